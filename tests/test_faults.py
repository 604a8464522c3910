"""Fault injection: damaged checkpoint files, torn logs, changed data, bad inputs.

Each damaged-checkpoint case damages the newest checkpoint of a 4-step run, then resumes
to step 6: the damage must be noticed (a warning naming the checkpoint, which is set
aside), the previous checkpoint resumed, and the run must end exactly as an undamaged one.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from aigc_jax.train.checkpoint import WorkdirMismatchError
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.metric_writer import read_metrics
from aigc_jax.train.restore import restore_run
from tests.conftest import REPO_ROOT, write_image_folder


def array_files(checkpoint: str) -> list[str]:
  """The checkpoint's array data files, largest first."""
  paths = [os.path.join(root, name) for root, _, names in os.walk(checkpoint)
           for name in names if os.path.basename(root) == "d"]
  return sorted(paths, key=os.path.getsize, reverse=True)


def flip_bytes(checkpoint: str) -> None:
  """64 bytes in the middle of every array data file inverted, as silent disk corruption.
  Every file, not one: OCDBT's data files also hold b-tree nodes that the restore never
  reads again, so any single file (the largest included) may be dead data."""
  for path in array_files(checkpoint):
    with open(path, "r+b") as f:
      f.seek(os.path.getsize(path) // 2)
      chunk = f.read(64)
      f.seek(-len(chunk), os.SEEK_CUR)
      f.write(bytes(b ^ 0xFF for b in chunk))


def truncate_largest(checkpoint: str) -> None:
  with open(array_files(checkpoint)[0], "r+b") as f:
    f.truncate(100)


def delete_largest(checkpoint: str) -> None:
  os.remove(array_files(checkpoint)[0])


def delete_metadata(checkpoint: str) -> None:
  os.remove(os.path.join(checkpoint, "state", "_METADATA"))


def tamper_checksum(checkpoint: str) -> None:
  """The arrays intact but not those the checksums were written for."""
  path = os.path.join(checkpoint, "meta", "metadata")
  with open(path) as f:
    meta = json.load(f)
  first = sorted(meta["checksums"])[0]
  meta["checksums"][first] = (meta["checksums"][first] + 1) % 2**32
  with open(path, "w") as f:
    json.dump(meta, f)


def without_speed(records):
  return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in records]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, image_folder):
  """An undamaged 6-step run of the tiny config."""
  from experiments.configs import mlp_gan
  config = mlp_gan.get_config("tiny")
  config.data.name, config.data.image_folder = "image_folder", image_folder
  config.num_steps = 6
  workdir = str(tmp_path_factory.mktemp("straight"))
  train_and_evaluate(config, workdir)
  return workdir


@pytest.mark.parametrize("damage", [flip_bytes, truncate_largest, delete_largest,
                                    delete_metadata, tamper_checksum])
def test_a_damaged_checkpoint_is_set_aside_and_the_run_ends_as_an_undamaged_one(
    damage, tiny_config, tmp_path, caplog, straight_run):
  workdir = str(tmp_path)
  tiny_config.num_steps = 4
  train_and_evaluate(tiny_config, workdir)  # Checkpoints at 2 and 4.
  damage(os.path.join(workdir, "checkpoints", "4"))
  tiny_config.num_steps = 6
  train_and_evaluate(tiny_config, workdir)
  assert f"Skipping checkpoint {os.path.join(workdir, 'checkpoints', '4')}:" in caplog.text
  assert any(d.startswith("4.unreadable.") for d in os.listdir(tmp_path / "checkpoints"))
  got, want = without_speed(read_metrics(workdir)), without_speed(read_metrics(straight_run))
  assert [r["step"] for r in got] == [r["step"] for r in want] == [2, 4, 6]
  for g, w in zip(got, want):
    assert g == pytest.approx(w, rel=1e-6)
  assert restore_run(workdir).step == 6


def test_a_torn_last_metrics_line_is_dropped_with_a_warning(tiny_config, tmp_path, caplog):
  train_and_evaluate(tiny_config, str(tmp_path))  # Logs at 2 and 4.
  path = tmp_path / "metrics.jsonl"
  os.truncate(path, os.path.getsize(path) - 40)  # A crash mid-write.
  assert [m["step"] for m in read_metrics(str(tmp_path))] == [2]
  tiny_config.num_steps = 6
  train_and_evaluate(tiny_config, str(tmp_path))
  assert "Dropped the torn last line" in caplog.text
  # Resumed from checkpoint 4: the torn record of step 4 is the one thing lost.
  assert [m["step"] for m in read_metrics(str(tmp_path))] == [2, 6]


def test_a_damaged_line_inside_the_metrics_log_is_named(tiny_config, tmp_path):
  train_and_evaluate(tiny_config, str(tmp_path))
  path = tmp_path / "metrics.jsonl"
  lines = path.read_text().splitlines(keepends=True)
  path.write_text("garbage\n" + "".join(lines))
  tiny_config.num_steps = 6
  with pytest.raises(ValueError, match="line 1 is not a metrics record"):
    train_and_evaluate(tiny_config, str(tmp_path))


@pytest.mark.parametrize("key,value", [("corrupt", "symmetric_labels=0.25"),
                                       ("corrupt_seed", 3)])
def test_resuming_on_other_training_data_is_refused_by_name(key, value, tiny_config,
                                                             tmp_path):
  train_and_evaluate(tiny_config, str(tmp_path))
  tiny_config.data[key] = value
  tiny_config.num_steps = 6
  with pytest.raises(WorkdirMismatchError, match=f"data.{key}=.*init_from"):
    train_and_evaluate(tiny_config, str(tmp_path))


def test_a_checkpoint_older_than_the_data_keys_still_resumes(tiny_config, tmp_path):
  """Keys added since a checkpoint was written count as their defaults."""
  train_and_evaluate(tiny_config, str(tmp_path))  # Checkpoints at 2 and 4.
  path = tmp_path / "checkpoints" / "4" / "meta" / "metadata"
  meta = json.loads(path.read_text())
  for key in ("eval_fraction", "split_seed", "image_size", "channels", "text_file"):
    del meta["config"]["data"][key]
  del meta["config"]["stall_timeout_s"]
  path.write_text(json.dumps(meta))
  tiny_config.num_steps = 6
  train_and_evaluate(tiny_config, str(tmp_path))
  assert restore_run(str(tmp_path)).step == 6


def test_resuming_on_another_image_folder_is_refused_by_name(tiny_config, tmp_path):
  train_and_evaluate(tiny_config, str(tmp_path / "run"))
  tiny_config.data.image_folder = write_image_folder(str(tmp_path / "other"), seed=1)
  tiny_config.num_steps = 6
  with pytest.raises(WorkdirMismatchError, match="data.image_folder"):
    train_and_evaluate(tiny_config, str(tmp_path / "run"))


def test_restoring_a_folder_that_was_never_trained_leaves_nothing_behind(tmp_path):
  missing = tmp_path / "never_trained"
  with pytest.raises(FileNotFoundError, match="Train it first"):
    restore_run(str(missing))
  assert not missing.exists()


TINY = "--config=experiments/configs/mlp_gan.py:tiny"


def folder(image_folder):
  return ["--config.data.name=image_folder", f"--config.data.image_folder={image_folder}"]


# (entry point and arguments, words the message must contain); {folder} and {tmp} are
# filled in per test. Each must exit non-zero with that message and no traceback.
BAD_INPUTS = [
    (["experiments.train", TINY, "--workdir={tmp}/w", "--config.num_steps=-5"],
     "num_steps=-5"),
    (["experiments.train", TINY, "--workdir={tmp}/w", "--config.batch_size=0"],
     "batch_size=0"),
    (["experiments.train", TINY, "--workdir={tmp}/w", "--config.steps_per_call=0"],
     "steps_per_call=0"),
    (["experiments.train", TINY, "--workdir={tmp}/w", "--config.data.name=image_folder",
      "--config.data.image_folder={tmp}/nowhere"], "is not a folder"),
    (["experiments.train", TINY, "--workdir={tmp}/w", "{folder}", "--config.loss=nope"],
     "Unknown GAN loss 'nope'"),
    (["experiments.train", TINY, "--workdir={tmp}/w", "{folder}",
      "--config.data.exclude={tmp}/missing.npy"], "data.exclude="),
    (["experiments.sample", "--workdir={tmp}/never_trained", "--output={tmp}/s.npy"],
     "No checkpoints at"),
    (["experiments.sample", "--workdir={tmp}/w", "--top_p=0"], "--top_p=0"),
    (["experiments.evaluate", "--workdir={tmp}/never_trained"], "No checkpoints at"),
    (["experiments.clean_data", "--config=experiments/configs/clean.py:tiny",
      "--workdir={tmp}/c", "{folder}", "--config.detectors=magic"], "Unknown detector"),
    (["experiments.compare", "{tmp}/never_evaluated", "--output={tmp}/c.md"],
     "No evaluation reports"),
]


def filled(args, tmp_path, image_folder):
  out = []
  for arg in args:
    if arg == "{folder}":
      out += folder(image_folder)
    else:
      out.append(arg.format(tmp=tmp_path))
  return out


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_gets_one_clear_message_and_no_traceback(args, message, tmp_path,
                                                            image_folder):
  if args[0] == "experiments.compare":
    os.makedirs(tmp_path / "never_evaluated")
  result = subprocess.run([sys.executable, "-m", *filled(args, tmp_path, image_folder)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-2000:]
  assert "Traceback" not in result.stderr, result.stderr[-2000:]
  assert not (tmp_path / "never_trained").exists()


def test_a_user_error_shows_its_traceback_when_asked(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "experiments.train", TINY, f"--workdir={tmp_path}",
       "--config.num_steps=-5"], cwd=REPO_ROOT, capture_output=True, text=True,
      env={**os.environ, "AIGC_TRACEBACK": "1"})
  assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["local", "2", "--devices_per_process"], "--devices_per_process needs a positive"),
    (["slurm", "--nodes", "abc", "--gpus_per_node", "-3"], "--nodes needs a positive"),
    (["slurm", "--gpus_per_node", "-3"], "--gpus_per_node needs a positive"),
    (["tpu-vm", "--name", "--zone", "z"], "--name needs a value"),
])
def test_launcher_refuses_bad_options_by_name(args, message):
  result = subprocess.run([os.path.join(REPO_ROOT, "launch.sh"), *args, "--",
                           "--workdir=runs/x"], capture_output=True, text=True)
  assert result.returncode == 2 and message in result.stderr and not result.stdout


def test_killed_at_five_random_points_the_run_ends_bit_identical(tiny_config, image_folder,
                                                                 tmp_path):
  """SIGKILL five times, at seeded random moments after a checkpoint appears (some land
  inside the next asynchronous save); every rerun resumes. State, metrics and the last
  sample grid must equal an uninterrupted run's exactly."""
  from tests.test_cli import command, folder_flags, saved_steps, start

  overrides = dict(num_steps=120, checkpoint_every=10, log_every=10, sample_every=60)
  workdir = str(tmp_path / "killed")
  args = command("experiments.train", *folder_flags(image_folder, workdir, **overrides))
  delays = np.random.default_rng(0).uniform(0.0, 0.8, 5)
  for i, delay in enumerate(delays):
    before = saved_steps(workdir)
    process = start(args, tmp_path / f"run_{i}.log")
    deadline = time.time() + 120
    while saved_steps(workdir) == before:  # This run's first checkpoint.
      assert process.poll() is None, (tmp_path / f"run_{i}.log").read_text()[-2000:]
      assert time.time() < deadline
      time.sleep(0.02)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
  final = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert final.returncode == 0, final.stderr[-3000:]
  assert "Resumed from" in final.stderr

  reference = str(tmp_path / "reference")
  tiny_config.update(overrides)
  train_and_evaluate(tiny_config, reference)
  assert without_speed(read_metrics(workdir)) == without_speed(read_metrics(reference))
  killed, straight = restore_run(workdir), restore_run(reference)
  assert killed.step == straight.step == 120
  for a, b in zip(jax.tree.leaves(killed.state), jax.tree.leaves(straight.state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  grid = os.path.join("samples", "step_0000120.png")
  assert open(os.path.join(workdir, grid), "rb").read() == open(
      os.path.join(reference, grid), "rb").read()


def test_the_stall_watchdog_ends_a_run_whose_steps_stop_and_spares_one_that_steps():
  from aigc_jax.train.watchdog import STALL_EXIT_STATUS, StallWatchdog

  exits = []
  with StallWatchdog(0.4, lambda: "process 1 of 2", exit_process=exits.append) as watchdog:
    for step in range(10):  # Progressing: a beat every 0.1 s.
      watchdog.beat(step)
      time.sleep(0.1)
    assert not exits
    time.sleep(1.0)  # Stuck after step 9.
  assert exits == [STALL_EXIT_STATUS]
  with StallWatchdog(0, lambda: "", exit_process=exits.append):  # Off.
    time.sleep(0.2)
  assert exits == [STALL_EXIT_STATUS]


def test_launcher_kills_processes_that_outlive_the_sigterm_grace(image_folder, tmp_path):
  """With no grace at all, SIGTERM to launch.sh ends its processes at once, non-zero: what
  a process stuck in a collective (which cannot act on SIGTERM) gets after TERM_GRACE_S."""
  from tests.test_cli import folder_flags, saved_steps

  workdir = str(tmp_path / "run")
  launcher = subprocess.Popen(
      [os.path.join(REPO_ROOT, "launch.sh"), "local", "1", "--",
       *folder_flags(image_folder, workdir, num_steps=1_000_000, checkpoint_every=20,
                     log_every=10, sample_every=1_000_000)],
      cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
      env={**os.environ, "TERM_GRACE_S": "0"})
  deadline = time.time() + 120
  while not saved_steps(workdir):
    assert launcher.poll() is None and time.time() < deadline
    time.sleep(0.1)
  launcher.send_signal(signal.SIGTERM)
  assert launcher.wait(timeout=60) != 0
  assert "exited with status" in launcher.stderr.read()
