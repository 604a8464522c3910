"""Times a config's jitted train step, bare and inside the full input pipeline.

  AIGC_RAW_DATA_DIR=../shared/data python -m benchmarks.train_step_speed \
      --config=experiments/configs/mlp_gan.py:mnist [--steps=500]

Prints ms and steps/s, images or tokens/s, seconds per epoch of an image split, the step's FLOPs
(XLA cost analysis) and model-FLOPs utilisation against this machine's measured float32
matmul peak. Compilation is excluded. Bare and full-loop measurements alternate and the
median of each is shown, because a shared 2-core VM drifts by tens of percent.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from aigc_jax.data.batching import stack_batches
from aigc_jax.data.images import ImageData, model_inputs
from aigc_jax.data.sources import config_split
from aigc_jax.train import sharding
from aigc_jax.train.family import get_family
from aigc_jax.train.loop import make_multi_step
from aigc_jax.train.rng import stream
from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].")
_STEPS = flags.DEFINE_integer("steps", 200, "Timed steps per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Measurements of each kind; the median is shown.")
flags.mark_flags_as_required(["config"])


def matmul_peak_flops(n: int = 2048, repeats: int = 20) -> float:
  """Best float32 FLOP/s of an n x n matmul: the roofline MFU is measured against."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(lambda x: x @ a)
  x = matmul(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    x = matmul(x).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best


def time_steps(step_fn, state, batches, rng, steps: int) -> tuple[float, object]:
  state, _ = step_fn(state, next(batches), rng)  # Warm-up (compiled already).
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step_fn(state, next(batches), rng)
  jax.block_until_ready(metrics)
  return time.perf_counter() - start, state


def main(argv):
  del argv
  cli.setup_runtime()
  config = _CONFIG.value
  family = get_family(config.family)
  mesh = sharding.make_mesh()
  repl = sharding.replicated(mesh)
  data = config_split(config, config.data.split)
  rng = jax.random.key(config.seed)
  state = jax.jit(lambda r: family.create_state(config, r, data.spec), out_shardings=repl)(
      stream(rng, "init"))
  k = config.steps_per_call
  chunk_sharding = sharding.stacked_batch_sharded(mesh)
  train_step = family.make_train_step(config, data.spec)
  step_fn = jax.jit(make_multi_step(train_step),
                    in_shardings=(repl, chunk_sharding, repl), out_shardings=(repl, repl),
                    donate_argnums=0)

  def pipeline():
    chunks = itertools.repeat(k)
    return sharding.prefetch_to_devices(
        stack_batches(data.train_batches(global_batch=config.batch_size, seed=config.seed),
                      chunks), functools.partial(sharding.to_global, sharding=chunk_sharding))

  fixed = next(pipeline())
  one_batch = model_inputs(jax.tree.map(lambda x: x[0], fixed))
  flops = jax.jit(train_step).lower(state, one_batch, rng).compile().cost_analysis()["flops"]
  peak = matmul_peak_flops()

  def repeat(batch):
    while True:
      yield batch

  bare, loop = [], []
  batches = pipeline()
  calls = max(_STEPS.value // k, 1)
  for _ in range(_REPEATS.value):
    seconds, state = time_steps(step_fn, state, repeat(fixed), rng, calls)
    bare.append(seconds)
    seconds, state = time_steps(step_fn, state, batches, rng, calls)
    loop.append(seconds)
  n, b = calls * k, config.batch_size
  if isinstance(data, ImageData):
    per_step, unit, epoch_steps = b, "images", len(data.images) / b
  else:
    per_step, unit, epoch_steps = b * config.block_size, "tokens", None
  print(f"config: {config.family}/{config.model.arch} on {config.data.name}, batch {b}, "
        f"{mesh.size} {jax.devices()[0].platform} device(s)")
  print(f"matmul peak (f32, measured): {peak / 1e9:.1f} GFLOP/s")
  print(f"step FLOPs (XLA cost analysis): {flops / 1e9:.3f} GFLOP; {k} step(s) per call")
  for name, times in (("bare step", bare), ("full loop (tf.data + transfer)", loop)):
    seconds = statistics.median(times)
    epoch = f"  {epoch_steps * seconds / n:6.2f} s/epoch" if epoch_steps else ""
    print(f"{name:32s} {1e3 * seconds / n:7.2f} ms/step  {n / seconds:7.1f} steps/s  "
          f"{n * per_step / seconds:9.0f} {unit}/s{epoch}  "
          f"MFU {flops * n / seconds / peak:5.1%}  "
          f"(range {n / max(times):.1f}-{n / min(times):.1f} steps/s)")


if __name__ == "__main__":
  app.run(main)
