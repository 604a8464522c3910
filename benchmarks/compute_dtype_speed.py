"""Times a config's compiled train step in float32 and with bf16 compute, on synthetic data.

  python -m benchmarks.compute_dtype_speed --config=experiments/configs/dcgan.py:mnist \
      [--config.batch_size=512] [--steps=100]

Prints ms per step and examples/s for each `compute_dtype`. No dataset is read (batches
are random, of the dataset's shape), so it runs on an accelerator host with nothing
prepared; the input pipeline is timed by benchmarks/train_step_speed.py.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from aigc_jax.data.images import ImageSpec
from aigc_jax.data.text import TextSpec
from aigc_jax.train.family import get_family
from aigc_jax.train.rng import stream

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].")
_STEPS = flags.DEFINE_integer("steps", 100, "Timed steps per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Measurements per dtype; the median is shown.")
flags.mark_flags_as_required(["config"])

IMAGE_SPECS = {"mnist": ImageSpec((28, 28, 1), 10), "fashion_mnist": ImageSpec((28, 28, 1), 10),
               "cifar10": ImageSpec((32, 32, 3), 10)}
SHAKESPEARE_VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def synthetic_batch(config, spec, rng: np.random.Generator) -> dict[str, np.ndarray]:
  if isinstance(spec, TextSpec):
    return {"tokens": rng.integers(0, spec.vocab_size, (config.batch_size,
                                                        config.block_size + 1), np.int32)}
  return {"image": rng.uniform(-1, 1, (config.batch_size, *spec.image_shape)).astype(np.float32),
          "label": rng.integers(0, spec.num_classes, config.batch_size).astype(np.int32)}


def ms_per_step(config, spec, steps: int, repeats: int) -> float:
  family = get_family(config.family)
  rng = jax.random.key(config.seed)
  state = jax.jit(lambda r: family.create_state(config, r, spec))(stream(rng, "init"))
  step = jax.jit(family.make_train_step(config, spec), donate_argnums=0)
  batch = jax.device_put(synthetic_batch(config, spec, np.random.default_rng(0)))
  state, _ = step(state, batch, rng)  # Compile and warm up.
  jax.block_until_ready(state)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, batch, rng)
    jax.block_until_ready(metrics)
    times.append((time.perf_counter() - start) / steps * 1e3)
  return statistics.median(times)


def main(argv):
  del argv
  config = _CONFIG.value
  spec = (TextSpec(vocab=SHAKESPEARE_VOCAB) if config.get("block_size")
          else IMAGE_SPECS[config.data.name])
  per_step = config.batch_size * (config.block_size if config.get("block_size") else 1)
  unit = "tokens" if config.get("block_size") else "examples"
  print(f"{config.family}/{config.model.arch}, batch {config.batch_size}, on "
        f"{jax.devices()[0].device_kind}:")
  for dtype in ("float32", "bfloat16"):
    with config.unlocked():
      config.compute_dtype = dtype
    ms = ms_per_step(config, spec, _STEPS.value, _REPEATS.value)
    print(f"  compute_dtype={dtype:9s} {ms:8.2f} ms/step  {per_step / ms * 1e3:12,.0f} {unit}/s")


if __name__ == "__main__":
  jax.config.update("jax_threefry_partitionable", True)
  app.run(main)
