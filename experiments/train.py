"""Trains a model from a config file; rerunning with the same workdir resumes.

  python -m experiments.train --config=experiments/configs/mlp_gan.py:mnist \
      --workdir=runs/mlp_gan [--config.num_steps=2000 ...]
"""

from absl import app, flags
from ml_collections import config_flags

from aigc_jax.train.loop import train_and_evaluate
from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, logs, samples.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
