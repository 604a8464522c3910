"""README.md's quickstart is what CI runs, so it cannot silently go stale."""

import os
import re

from tests.conftest import REPO_ROOT


def read(path):
  with open(os.path.join(REPO_ROOT, path)) as f:
    return f.read()


def test_ci_runs_the_readme_test_command_verbatim():
  command = re.search(r'^TEST_COMMAND="(.+)"$', read(".ci/run"), re.M).group(1)
  assert command in read("README.md").splitlines()


def test_readme_train_command_names_an_existing_config():
  train = next(line for line in read("README.md").splitlines()
               if "experiments.train" in line and line.startswith("python3 -m venv"))
  config = re.search(r"--config=([\w/.]+\.py)", train).group(1)
  assert os.path.isfile(os.path.join(REPO_ROOT, config))
