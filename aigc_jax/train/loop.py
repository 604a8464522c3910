"""The training loop every model family shares: data, sharding, logs, samples, checkpoints.

`train_and_evaluate(config, workdir)` is what the `experiments.train` entry point and the
tests call. Re-running it on the same workdir resumes from the latest checkpoint; the run
then continues exactly as an uninterrupted one would (same batches, same randomness).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from aigc_jax.data.image_grid import make_grid, save_png, to_unit_range
from aigc_jax.data.pipeline import image_batches
from aigc_jax.data.sources import DataSpec, ImageData, load_images
from aigc_jax.train import sharding
from aigc_jax.train.checkpoint import Checkpointer, abstract_like
from aigc_jax.train.family import Family, get_family
from aigc_jax.train.metric_writer import MetricWriter
from aigc_jax.train.preemption import sigterm_flag
from aigc_jax.train.rng import stream


class NonFiniteLossError(FloatingPointError):
  """A train-step metric became NaN or infinite; the run stopped before saving it."""


class WorkdirMismatchError(ValueError):
  """The workdir holds checkpoints of a different family or architecture."""


def load_train_data(config: ml_collections.ConfigDict) -> ImageData:
  data = config.data
  return load_images(data.name, data.split, data_dir=data.data_dir,
                     manual_dir=data.manual_dir, image_folder=data.image_folder)


def checkpoint_meta(config: ml_collections.ConfigDict, spec: DataSpec) -> dict:
  """JSON saved beside each state: enough to rebuild the model without the config file.

  The data position needs no entry: batch s is a function of (seed, s), see pipeline.py.
  """
  return {"config": json.loads(config.to_json_best_effort()), "data_spec": spec.to_json()}


def check_same_model(config: ml_collections.ConfigDict, meta: dict, path: str) -> None:
  saved, wanted = meta["config"], json.loads(config.to_json_best_effort())
  for key in ("family", "model"):
    if saved.get(key) != wanted[key]:
      raise WorkdirMismatchError(
          f"The checkpoint {path} was written with {key}={saved.get(key)!r}, but the "
          f"config asks for {key}={wanted[key]!r}. Use a fresh --workdir, or the config "
          "that wrote this one.")


def fetch(tree: Any) -> Any:
  """Host copy of replicated arrays (works in multi-process runs, unlike device_get)."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def _truncate_metrics(workdir: str, last_step: int) -> None:
  """Drops log lines past the checkpoint a run resumes from; they will be redone."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
  with open(path, "w") as f:
    f.writelines(lines)


def _format_eta(seconds: float) -> str:
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class _Logger:
  """Holds step metrics on device and fetches them only at log, sample and save points."""

  def __init__(self, writer: MetricWriter, num_steps: int, checkpointer: Checkpointer):
    self._writer = writer
    self._num_steps = num_steps
    self._checkpointer = checkpointer
    self._pending: list[tuple[int, dict[str, jax.Array]]] = []
    self._last_time = time.perf_counter()
    self._last_step: int | None = None
    self.last_scalars: dict[str, float] = {}

  def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
    if self._last_step is None:
      self._last_step = step - 1
    self._pending.append((step, metrics))

  def flush(self) -> None:
    """Fetches pending metrics, stops on a non-finite value, writes their mean."""
    if not self._pending:
      return
    steps = [s for s, _ in self._pending]
    values = fetch([m for _, m in self._pending])
    self._pending.clear()
    for step, metrics in zip(steps, values):
      bad = {k: float(v) for k, v in metrics.items() if not np.isfinite(v)}
      if bad:
        last_good = self._checkpointer.latest_step()
        where = (f"the last good checkpoint is {self._checkpointer.path(last_good)} "
                 f"(step {last_good}); rerunning the command resumes from it"
                 if last_good is not None else "no checkpoint had been saved yet")
        raise NonFiniteLossError(
            f"Non-finite metrics {bad} at step {step}; {where}. Lower the learning rate, "
            "or check the data for NaNs/extreme values, before resuming.")
    now = time.perf_counter()
    steps_per_s = (steps[-1] - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, steps[-1]
    scalars = {k: float(np.mean([m[k] for m in values])) for k in values[0]}
    scalars["steps_per_s"] = steps_per_s
    self.last_scalars = scalars
    self._writer.write_scalars(steps[-1], scalars)
    if jax.process_index() == 0:
      eta = (self._num_steps - steps[-1]) / max(steps_per_s, 1e-9)
      shown = " ".join(f"{k}={v:.4g}" for k, v in scalars.items() if k != "steps_per_s")
      logging.info("step %d/%d | %.1f steps/s | ETA %s | %s", steps[-1], self._num_steps,
                   steps_per_s, _format_eta(eta), shown)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir` up to `config.num_steps`; returns the last logged scalars."""
  family: Family = get_family(config.family)
  mesh = sharding.make_mesh()
  sharding.check_batch_divisible(config.batch_size, mesh)
  repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  is_chief = jax.process_index() == 0

  data = load_train_data(config)
  spec = data.spec
  init_rng, train_rng, grid_rng = (stream(jax.random.key(config.seed), name)
                                   for name in ("init", "train", "grid"))
  create_state = lambda rng: family.create_state(config, rng, spec)

  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                              max_to_keep=config.keep_checkpoints)
  start_step = checkpointer.latest_step()
  if start_step is None:
    start_step = 0
    state = jax.jit(create_state, out_shardings=repl)(init_rng)
  else:
    check_same_model(config, checkpointer.restore_meta(start_step),
                     checkpointer.path(start_step))
    state = checkpointer.restore_state(
        start_step, abstract_like(create_state, init_rng, sharding=repl))
    logging.info("Resumed from %s at step %d.", checkpointer.path(start_step), start_step)
  meta = checkpoint_meta(config, spec)
  if is_chief:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(meta, f, indent=2)
    _truncate_metrics(workdir, start_step)

  train_step = jax.jit(family.make_train_step(config, spec),
                       in_shardings=(repl, batch_sharding, repl), out_shardings=(repl, repl),
                       donate_argnums=0)
  sample = jax.jit(family.make_sampler(config, spec), static_argnums=2, out_shardings=repl)
  batches = sharding.prefetch_to_devices(
      image_batches(data, global_batch=config.batch_size, seed=config.seed,
                    start_step=start_step, process_index=jax.process_index(),
                    process_count=jax.process_count()),
      batch_sharding)

  writer = MetricWriter(workdir, enabled=is_chief)
  logger = _Logger(writer, config.num_steps, checkpointer)
  logging.info("Training %s/%s on %s (%d examples, %s) from step %d to %d on %d device(s).",
               config.family, config.model.arch, config.data.name, len(data.images),
               spec.image_shape, start_step, config.num_steps, mesh.size)
  try:
    with sigterm_flag() as preemption:
      for step in range(start_step + 1, config.num_steps + 1):
        state, metrics = train_step(state, next(batches), train_rng)
        logger.add(step, metrics)
        last = step == config.num_steps
        if step % config.log_every == 0 or last:
          logger.flush()
        if step % config.sample_every == 0 or last:
          grid = make_grid(to_unit_range(fetch(sample(state, grid_rng, config.num_grid_samples))))
          if is_chief:
            save_png(os.path.join(workdir, "samples", f"step_{step:07d}.png"), grid)
            writer.write_image(step, "samples", grid)
        if step % config.checkpoint_every == 0 or last or preemption.requested:
          logger.flush()  # Never save a state whose metrics were not checked finite.
          checkpointer.save(step, state, meta)
        if preemption.requested:
          logging.warning("SIGTERM received: saved step %d to %s; rerun to resume.", step,
                          checkpointer.path(step))
          break
  finally:
    checkpointer.wait()
    checkpointer.close()
    writer.close()
  return logger.last_scalars
