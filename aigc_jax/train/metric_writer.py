"""Writes scalars and images to TensorBoard and `metrics.jsonl`, from process 0 only."""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf


class MetricWriter:
  """TensorBoard event files under `workdir/tb` plus one JSON line per logged step."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
      self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tb"))

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
    self._jsonl.flush()
    with self._tb.as_default(step=step):
      for name, value in scalars.items():
        tf.summary.scalar(name, value)

  def write_image(self, step: int, name: str, image_uint8: np.ndarray) -> None:
    if self.enabled:
      with self._tb.as_default(step=step):
        tf.summary.image(name, image_uint8[None])

  def write_text(self, step: int, name: str, text: str) -> None:
    if self.enabled:
      with self._tb.as_default(step=step):
        tf.summary.text(name, text)

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
  """Every record of `workdir/metrics.jsonl`, in order; a torn last line is left out."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    lines = [line for line in f if line.strip()]
  records = []
  for number, line in enumerate(lines, 1):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      if number < len(lines):
        raise
  return records
