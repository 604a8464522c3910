"""Buffers per-step metrics on device; at log points checks them and writes their mean."""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import logging

from aigc_jax.errors import UserError
from aigc_jax.train.checkpoint import Checkpointer
from aigc_jax.train.metric_writer import MetricWriter
from aigc_jax.train.sharding import fetch


class NonFiniteLossError(UserError, FloatingPointError):
  """A train-step metric became NaN or infinite; the run stopped before saving it."""


def format_eta(seconds: float) -> str:
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class StepLogger:
  """Collects the stacked metrics of each jitted call without a host round-trip.

  `flush` is the only place metrics reach the host: it finds the first non-finite step
  (so the error names it exactly), then writes the mean over the flushed steps with the
  measured steps/s, and prints a progress line with an ETA.
  """

  def __init__(self, writer: MetricWriter, num_steps: int, checkpointer: Checkpointer):
    self._writer = writer
    self._num_steps = num_steps
    self._checkpointer = checkpointer
    self._pending: list[tuple[int, dict[str, jax.Array]]] = []
    self._last_time = time.perf_counter()
    self._last_step: int | None = None
    self.last_scalars: dict[str, float] = {}

  def add(self, first_step: int, stacked_metrics: dict[str, jax.Array]) -> None:
    """Metrics of steps first_step, first_step + 1, ... stacked on the leading axis."""
    if self._last_step is None:
      self._last_step = first_step - 1
    self._pending.append((first_step, stacked_metrics))

  def flush(self) -> None:
    if not self._pending:
      return
    firsts = [first for first, _ in self._pending]
    chunks = fetch([metrics for _, metrics in self._pending])
    self._pending.clear()
    names = sorted(chunks[0])
    per_step = {k: np.concatenate([c[k] for c in chunks]) for k in names}  # (steps,)
    steps = np.concatenate([first + np.arange(len(c[names[0]]))
                            for first, c in zip(firsts, chunks)])
    self._check_finite(steps, per_step)
    now = time.perf_counter()
    steps_per_s = (steps[-1] - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, int(steps[-1])
    scalars = {k: float(np.mean(v)) for k, v in per_step.items()}
    scalars["steps_per_s"] = steps_per_s
    self.last_scalars = scalars
    self._writer.write_scalars(int(steps[-1]), scalars)
    if jax.process_index() == 0:
      eta = (self._num_steps - steps[-1]) / max(steps_per_s, 1e-9)
      shown = " ".join(f"{k}={v:.4g}" for k, v in scalars.items() if k != "steps_per_s")
      logging.info("step %d/%d | %.1f steps/s | ETA %s | %s", steps[-1], self._num_steps,
                   steps_per_s, format_eta(eta), shown)

  def _check_finite(self, steps: np.ndarray, per_step: dict[str, np.ndarray]) -> None:
    bad_rows = ~np.all([np.isfinite(v) for v in per_step.values()], axis=0)
    if not bad_rows.any():
      return
    row = int(np.argmax(bad_rows))
    bad = {k: float(v[row]) for k, v in per_step.items() if not np.isfinite(v[row])}
    raise NonFiniteLossError(
        f"Non-finite metrics {bad} at step {steps[row]}. "
        f"{self._checkpointer.last_good_description()} Lower the learning rate, or check "
        "the data for NaNs/extreme values, before resuming.")
