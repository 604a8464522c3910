"""Options that change memory or speed, not the model: gradient accumulation (same numbers)
and bf16 compute (float32 state, close numbers); a state of another layout is refused."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data.text import TextSpec
from aigc_jax.train import lm
from aigc_jax.train.checkpoint import Checkpointer, WorkdirMismatchError
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.metric_writer import read_metrics
from aigc_jax.train.restore import restore_run
from experiments.configs import char_gpt

SPEC = TextSpec(vocab="\n !abcdefghijklmnopqrstuvwxyz")


def test_lm_step_in_microbatches_equals_the_whole_batch():
  config = char_gpt.get_config("tiny")
  state = lm.create_state(config, jax.random.key(0), SPEC)
  batch = {"tokens": jnp.asarray(np.random.default_rng(0).integers(
      0, SPEC.vocab_size, (8, config.block_size + 1)), jnp.int32)}
  results = {}
  for k in (1, 4):
    config.grad_accum_steps = k
    results[k] = jax.jit(lm.make_train_step(config, SPEC))(state, batch, jax.random.key(1))
  (whole, whole_metrics), (parts, parts_metrics) = results[1], results[4]
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
  jax.tree.map(close, parts.params, whole.params)
  close(parts_metrics["loss"], whole_metrics["loss"])
  close(parts_metrics["grad_norm"], whole_metrics["grad_norm"])


@pytest.mark.parametrize("config_file", ["mlp_gan", "vae"])
def test_a_run_in_microbatches_logs_the_same_losses(config_file, image_folder, tmp_path):
  runs = {}
  for k in (1, 2):
    config = importlib.import_module(f"experiments.configs.{config_file}").get_config("tiny")
    config.data.name, config.data.image_folder = "image_folder", image_folder
    config.update(num_steps=4, log_every=1, eval_every=0, grad_accum_steps=k)
    train_and_evaluate(config, str(tmp_path / str(k)))
    runs[k] = [{key: v for key, v in m.items() if key != "steps_per_s"}
               for m in read_metrics(str(tmp_path / str(k)))]
  for whole, parts in zip(runs[1], runs[2]):
    assert parts == pytest.approx(whole, rel=1e-5, abs=1e-6)


def test_microbatches_must_divide_the_batch():
  config = char_gpt.get_config("tiny")
  config.grad_accum_steps = 3
  state = lm.create_state(config, jax.random.key(0), SPEC)
  batch = {"tokens": jnp.zeros((8, config.block_size + 1), jnp.int32)}
  with pytest.raises(ValueError, match="must divide the batch"):
    lm.make_train_step(config, SPEC)(state, batch, jax.random.key(1))


@pytest.mark.parametrize("config_file", ["mlp_gan", "vae"])
def test_bf16_compute_keeps_a_float32_state_and_close_losses(config_file, image_folder,
                                                             tmp_path):
  runs = {}
  for dtype in ("float32", "bfloat16"):
    config = importlib.import_module(f"experiments.configs.{config_file}").get_config("tiny")
    config.data.name, config.data.image_folder = "image_folder", image_folder
    config.update(num_steps=4, log_every=1, eval_every=0, compute_dtype=dtype)
    train_and_evaluate(config, str(tmp_path / dtype))
    runs[dtype] = read_metrics(str(tmp_path / dtype))
  state = restore_run(str(tmp_path / "bfloat16")).state
  assert {str(leaf.dtype) for leaf in jax.tree.leaves(state)} == {"float32", "int32"}
  for full, half in zip(runs["float32"], runs["bfloat16"]):
    full.pop("steps_per_s"), half.pop("steps_per_s")
    assert half == pytest.approx(full, rel=0.05, abs=1e-3)
    assert half != pytest.approx(full, rel=1e-6)  # bf16 did run.


def test_a_checkpoint_of_another_state_layout_is_refused_not_set_aside(tmp_path):
  checkpointer = Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(1, {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}, meta={})
  other = {"w": jax.ShapeDtypeStruct((2, 4), jnp.float32),
           "scale": jax.ShapeDtypeStruct((3,), jnp.float32)}
  with pytest.raises(WorkdirMismatchError) as error:
    checkpointer.check_same_layout(1, other)
  message = str(error.value)
  assert "b only in the checkpoint" in message and "scale only in this config" in message
  assert "w is (2, 3) there, (2, 4) here" in message
  checkpointer.close()
