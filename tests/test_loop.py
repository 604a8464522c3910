"""The shared loop: outputs, resume equivalence, failure modes, and sampling a workdir."""

import os
import shutil

import chex
import jax
import numpy as np
import pytest

from aigc_jax.data.images import ImageSpec
from aigc_jax.train import gan
from aigc_jax.train.checkpoint import NoReadableCheckpointError, WorkdirMismatchError
from aigc_jax.train.loop import chunk_sizes, crossed, train_and_evaluate
from aigc_jax.train.metric_writer import read_metrics
from aigc_jax.train.restore import generate_images, restore_run, warm_start
from aigc_jax.train.step_logger import NonFiniteLossError

SPEC = ImageSpec(image_shape=(8, 8, 1), num_classes=2)  # conftest's fake image folder.


def test_a_run_writes_logs_samples_checkpoints_and_config(tiny_config, tmp_path):
  workdir = str(tmp_path)
  scalars = train_and_evaluate(tiny_config, workdir)
  assert {"d_loss", "g_loss", "steps_per_s"} <= set(scalars)
  assert [m["step"] for m in read_metrics(workdir)] == [2, 4]
  assert os.path.exists(os.path.join(workdir, "samples", "step_0000004.png"))
  assert os.path.exists(os.path.join(workdir, "config.json"))
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tb"))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]


def test_resumed_run_matches_an_uninterrupted_one(tiny_config, tmp_path):
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  tiny_config.num_steps = 6
  train_and_evaluate(tiny_config, straight)
  tiny_config.num_steps = 4
  train_and_evaluate(tiny_config, resumed)
  tiny_config.num_steps = 6
  train_and_evaluate(tiny_config, resumed)  # Resumes at 4, runs steps 5 and 6.
  a, b = read_metrics(straight), read_metrics(resumed)
  assert [m["step"] for m in b] == [2, 4, 6]
  for x, y in zip(a, b):
    x.pop("steps_per_s"), y.pop("steps_per_s")
    assert x == pytest.approx(y, rel=1e-6)
  chex.assert_trees_all_close(restore_run(straight).state.g_params,
                              restore_run(resumed).state.g_params, rtol=1e-6)


def damage(checkpoint_dir):
  """Truncates every array file of a checkpoint, as a lost disk block or full disk would."""
  for root, _, files in os.walk(os.path.join(checkpoint_dir, "state")):
    for name in files:
      if os.path.basename(root) == "d":
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(8)


def test_an_unreadable_checkpoint_is_set_aside_and_the_previous_one_resumed(
    tiny_config, tmp_path, caplog):
  straight, damaged = str(tmp_path / "straight"), str(tmp_path / "damaged")
  tiny_config.num_steps = 6
  train_and_evaluate(tiny_config, straight)
  tiny_config.num_steps = 4
  train_and_evaluate(tiny_config, damaged)  # Checkpoints at 2 and 4.
  damage(os.path.join(damaged, "checkpoints", "4"))
  tiny_config.num_steps = 6
  train_and_evaluate(tiny_config, damaged)  # Skips 4, resumes at 2, redoes 3..6.
  assert f"Skipping checkpoint {os.path.join(damaged, 'checkpoints', '4')}" in caplog.text
  saved = os.listdir(os.path.join(damaged, "checkpoints"))
  assert {"4", "6"} <= set(saved) and any(d.startswith("4.unreadable.") for d in saved)
  a, b = read_metrics(straight), read_metrics(damaged)
  assert [m["step"] for m in b] == [2, 4, 6]
  for x, y in zip(a, b):
    x.pop("steps_per_s"), y.pop("steps_per_s")
    assert x == pytest.approx(y, rel=1e-6)


def test_a_save_cut_short_by_sigkill_is_ignored_on_resume(tiny_config, tmp_path):
  """Orbax writes a step into a temporary folder and renames it when complete; a kill
  mid-save leaves that folder behind, half written."""
  train_and_evaluate(tiny_config, str(tmp_path))  # Checkpoints at 2 and 4.
  checkpoints = tmp_path / "checkpoints"
  partial = checkpoints / "6.orbax-checkpoint-tmp-1795430000000000"
  shutil.copytree(checkpoints / "4", partial)
  os.remove(partial / "commit_success.txt")
  damage(str(partial))
  tiny_config.num_steps = 6
  train_and_evaluate(tiny_config, str(tmp_path))  # Resumes at 4, saves 6 for real.
  assert [m["step"] for m in read_metrics(str(tmp_path))] == [2, 4, 6]
  assert restore_run(str(tmp_path)).step == 6


def test_a_run_whose_checkpoints_are_all_unreadable_stops_then_starts_afresh(
    tiny_config, tmp_path):
  train_and_evaluate(tiny_config, str(tmp_path))
  for step in ("2", "4"):
    damage(os.path.join(tmp_path, "checkpoints", step))
  with pytest.raises(NoReadableCheckpointError, match="rerun to train from scratch"):
    train_and_evaluate(tiny_config, str(tmp_path))
  train_and_evaluate(tiny_config, str(tmp_path))
  assert {"2", "4"} <= set(os.listdir(tmp_path / "checkpoints"))


def test_non_finite_loss_stops_and_names_step_and_last_checkpoint(tiny_config, tmp_path):
  train_and_evaluate(tiny_config, str(tmp_path))  # Checkpoints at 2 and 4.
  tiny_config.num_steps = 8
  tiny_config.optimizer.d_learning_rate = float("nan")
  with pytest.raises(NonFiniteLossError) as error:
    train_and_evaluate(tiny_config, str(tmp_path))
  message = str(error.value)
  assert "step 5" in message and os.path.join("checkpoints", "4") in message
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"], "saved a NaN state"


def test_workdir_of_another_model_is_refused(tiny_config, tmp_path):
  train_and_evaluate(tiny_config, str(tmp_path))
  tiny_config.model.g_hidden = (8, 8)
  tiny_config.num_steps = 6
  with pytest.raises(WorkdirMismatchError, match="fresh --workdir"):
    train_and_evaluate(tiny_config, str(tmp_path))


def test_batch_that_does_not_split_over_devices_is_refused(tiny_config, tmp_path):
  tiny_config.batch_size = 6  # 4 devices in tests.
  with pytest.raises(ValueError, match="multiple of 4"):
    train_and_evaluate(tiny_config, str(tmp_path))


def test_samples_from_a_workdir_are_in_unit_range_and_reproducible(tiny_config, tmp_path):
  train_and_evaluate(tiny_config, str(tmp_path))
  run = restore_run(str(tmp_path))
  assert run.step == 4 and run.spec.image_shape == (8, 8, 1)
  a = generate_images(run, 10, seed=3, batch_size=4)
  b = generate_images(run, 8, seed=3, batch_size=4)
  assert a.shape == (10, 8, 8, 1) and a.dtype == np.float32
  assert a.min() >= 0.0 and a.max() <= 1.0
  np.testing.assert_array_equal(a[:8], b)
  assert not np.array_equal(a, generate_images(run, 10, seed=4, batch_size=4))
  # Sampling uses the EMA generator, not the raw one.
  assert not np.allclose(jax.tree.leaves(run.state.ema_g_params)[0],
                         jax.tree.leaves(run.state.g_params)[0])


def test_chunk_sizes_and_event_crossings():
  assert chunk_sizes(0, 7, 3) == [3, 3, 1] and chunk_sizes(4, 8, 7) == [4]
  assert crossed(2, 1, 4) and crossed(2, 3, 4) and not crossed(5, 1, 4)
  assert not crossed(0, 0, 100)


def test_several_steps_per_call_train_like_one(tiny_config, tmp_path):
  tiny_config.num_steps = 7
  finals = []
  for k in (1, 3):  # Chunks of 3, 3 and 1 against 7 single steps.
    tiny_config.steps_per_call = k
    train_and_evaluate(tiny_config, str(tmp_path / str(k)))
    finals.append(restore_run(str(tmp_path / str(k))).state)
  assert int(finals[1].step) == 7
  chex.assert_trees_all_close(finals[0], finals[1], rtol=1e-5, atol=1e-6)


def test_init_from_warm_starts_parameters_but_not_optimiser_or_step(tiny_config, tmp_path):
  source, target = str(tmp_path / "source"), str(tmp_path / "target")
  train_and_evaluate(tiny_config, source)  # 4 steps.
  trained = restore_run(source).state
  fresh = jax.jit(lambda rng: gan.create_state(tiny_config, rng, SPEC))(jax.random.key(5))
  warm = warm_start(fresh, source)
  for field in ("g_params", "d_params", "ema_g_params"):
    chex.assert_trees_all_equal(getattr(warm, field), getattr(trained, field))
  chex.assert_trees_all_equal(warm.g_opt_state, fresh.g_opt_state)
  assert int(warm.step) == 0

  tiny_config.init_from = source
  tiny_config.num_steps = 2
  train_and_evaluate(tiny_config, target)
  assert restore_run(target).step == 2
  # Its own checkpoint wins over init_from when the run resumes.
  tiny_config.init_from = str(tmp_path / "nowhere")
  tiny_config.num_steps = 4
  train_and_evaluate(tiny_config, target)
  assert restore_run(target).step == 4


def test_init_from_a_run_of_another_model_is_refused_naming_the_variable(tiny_config,
                                                                        tmp_path):
  train_and_evaluate(tiny_config, str(tmp_path / "source"))
  tiny_config.model.g_hidden = (16, 48)
  tiny_config.init_from = str(tmp_path / "source")
  with pytest.raises(ValueError, match=r"does not fit this model: g_params\['Dense_1'\]"):
    train_and_evaluate(tiny_config, str(tmp_path / "target"))
