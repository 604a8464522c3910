"""Writes a run's periodic samples in the form that fits its data: PNG grids or text."""

from __future__ import annotations

import os

import numpy as np

from aigc_jax.data.image_grid import make_grid, save_png, to_unit_range
from aigc_jax.data.images import ImageSpec
from aigc_jax.data.text import TextSpec
from aigc_jax.data.training_split import cluster_labels, clusters_per_class
from aigc_jax.train.family import is_conditional
from aigc_jax.train.metric_writer import MetricWriter


def grid_columns(config, spec: ImageSpec | TextSpec) -> int | None:
  """One column per class for conditional models (they sample labels 0, 1, ..., K-1, 0, ...);
  a square grid for the rest, and for models conditioned on clusters (of all images or of
  each class) instead of classes."""
  if is_conditional(config) and not (cluster_labels(config) or clusters_per_class(config)):
    return spec.num_classes
  return None


def save_samples(spec: ImageSpec | TextSpec, samples: np.ndarray, workdir: str, step: int,
                 writer: MetricWriter, columns: int | None = None) -> str:
  """Images in [-1, 1] -> samples/step_N.png; token rows -> samples/step_N.txt."""
  stem = os.path.join(workdir, "samples", f"step_{step:07d}")
  if isinstance(spec, TextSpec):
    texts = [spec.decode(row) for row in samples]
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".txt", "w") as f:
      f.write("\n\n---\n\n".join(texts))
    writer.write_text(step, "samples", texts[0])
    return stem + ".txt"
  grid = make_grid(to_unit_range(samples), columns)
  save_png(stem + ".png", grid)
  writer.write_image(step, "samples", grid)
  return stem + ".png"
