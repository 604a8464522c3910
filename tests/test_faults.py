"""Fault injection: damaged checkpoint files, torn logs, changed data, bad inputs.

Each damaged-checkpoint case damages the newest checkpoint of a 4-step run, then resumes
to step 6: the damage must be noticed (a warning naming the checkpoint, which is set
aside), the previous checkpoint resumed, and the run must end exactly as an undamaged one.
"""

import json
import os

import pytest

from aigc_jax.train.checkpoint import WorkdirMismatchError
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.metric_writer import read_metrics
from aigc_jax.train.restore import restore_run
from tests.conftest import write_image_folder


def array_files(checkpoint: str) -> list[str]:
  """The checkpoint's array data files, largest first."""
  paths = [os.path.join(root, name) for root, _, names in os.walk(checkpoint)
           for name in names if os.path.basename(root) == "d"]
  return sorted(paths, key=os.path.getsize, reverse=True)


def flip_bytes(checkpoint: str) -> None:
  """64 bytes in the middle of the largest array file inverted, as silent disk corruption."""
  path = array_files(checkpoint)[0]
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
  assert f"Skipping checkpoint {os.path.join(workdir, 'checkpoints', '4')}" in caplog.text
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
