"""Where a config's train step spends its time: XLA's per-thunk trace, by op and by kind.

  AIGC_RAW_DATA_DIR=../shared/data python -m benchmarks.step_profile \
      --config=experiments/configs/dcgan.py:mnist [--steps=5] [--top=30]

Runs the compiled step on one real batch under `jax.profiler`, then prints the ms per step
of every thunk XLA:CPU ran (a fusion, a library matmul, a copy) with its output shape and
the layer and pass it comes from (`transpose(jvp(...))` is the backward pass), and the same
time summed by kind of thunk. Thunks may run two at a time, so their sum can exceed the
step's wall time; a share is still the place to look. This is how matmul_conv.py's forms
were chosen: per-tap matmuls, input copies and transposes each show up by name.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from aigc_jax.data.images import model_inputs
from aigc_jax.data.sources import config_split
from aigc_jax.train.family import get_family
from aigc_jax.train.rng import stream
from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].")
_STEPS = flags.DEFINE_integer("steps", 5, "Profiled steps; times are per step.")
_TOP = flags.DEFINE_integer("top", 30, "Thunks listed, slowest first.")
flags.mark_flags_as_required(["config"])

# Trace events that are the runtime's own bookkeeping rather than a compiled thunk.
_RUNTIME_EVENTS = ("ThunkExecutor", "$", "Slinky", "PjitFunction", "CommonPjRt",
                   "Allocate", "Handle inputs", "PythonRefManager", "end: ")


def thunk_microseconds(trace_events: list[dict]) -> collections.Counter:
  """Total duration (us) of each compiled thunk in a Chrome/Perfetto trace's events."""
  totals = collections.Counter()
  for event in trace_events:
    if event.get("ph") == "X" and not event["name"].startswith(_RUNTIME_EVENTS):
      totals[event["name"]] += event.get("dur", 0)
  return totals


def thunk_origins(hlo_text: str) -> dict[str, tuple[str, str]]:
  """Instruction name -> (output shape, op_name metadata) from compiled HLO text."""
  origins = {}
  for line in hlo_text.splitlines():
    match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) \w+\(", line)
    if match and match.group(1) not in origins:
      op = re.search(r'op_name="([^"]+)"', line)
      origins[match.group(1)] = (match.group(2), op.group(1) if op else "")
  return origins


def kind(thunk: str) -> str:
  """'ynn_fusion.63' -> 'ynn_fusion': the thunk's kind without XLA's numbering."""
  return re.sub(r"\.\d+$", "", thunk)


def main(argv):
  del argv
  cli.setup_runtime()
  config = _CONFIG.value
  family = get_family(config.family)
  data = config_split(config, config.data.split)
  rng = jax.random.key(config.seed)
  state = jax.jit(lambda r: family.create_state(config, r, data.spec))(stream(rng, "init"))
  batch = jax.device_put(model_inputs(next(data.train_batches(global_batch=config.batch_size,
                                                              seed=config.seed))))
  # Compiled once, outside the trace; the same executable is run and read.
  step = jax.jit(family.make_train_step(config, data.spec), donate_argnums=0).lower(
      state, batch, rng).compile()
  hlo = step.as_text()
  for _ in range(2):  # Warm up outside the trace.
    state, metrics = step(state, batch, rng)
  jax.block_until_ready(metrics)
  n = _STEPS.value
  with tempfile.TemporaryDirectory() as folder:
    start = time.perf_counter()
    with jax.profiler.trace(folder, create_perfetto_trace=True):
      for _ in range(n):
        state, metrics = step(state, batch, rng)
      jax.block_until_ready(metrics)
    wall = (time.perf_counter() - start) / n
    (path,) = glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True)
    with gzip.open(path) as f:
      trace = json.load(f)
  totals = thunk_microseconds(trace["traceEvents"] if isinstance(trace, dict) else trace)
  origins = thunk_origins(hlo)
  by_kind = collections.Counter()
  for thunk, us in totals.items():
    by_kind[kind(thunk)] += us
  print(f"{config.family}/{config.model.arch}, batch {config.batch_size}: "
        f"{1e3 * wall:.1f} ms per step under the profiler, thunks sum to "
        f"{sum(totals.values()) / n / 1e3:.1f} ms")
  print("\nby kind (ms per step):")
  for name, us in by_kind.most_common(12):
    print(f"  {us / n / 1e3:8.2f}  {name}")
  print(f"\nslowest {_TOP.value} thunks (ms per step, output, origin):")
  for thunk, us in totals.most_common(_TOP.value):
    shape, op = origins.get(thunk, ("", ""))
    print(f"  {us / n / 1e3:8.2f}  {thunk:24s} {shape:30s} {op.split('/', 1)[-1]}")


if __name__ == "__main__":
  app.run(main)
