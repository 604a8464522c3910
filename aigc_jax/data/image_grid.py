"""Tiles a batch of images into one picture and writes it as PNG."""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf


def to_unit_range(images: np.ndarray) -> np.ndarray:
  """[-1, 1] model output -> float32 [0, 1], the range samples are saved in."""
  return np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)


def to_uint8(images_unit: np.ndarray) -> np.ndarray:
  """Floats in [0, 1] -> uint8 pixels, the form images are stored and written in."""
  return np.round(np.clip(images_unit, 0.0, 1.0) * 255).astype(np.uint8)


def make_grid(images_unit: np.ndarray, columns: int | None = None,
              padding: int = 2) -> np.ndarray:
  """(N, H, W, C) floats in [0, 1] -> one uint8 (rows*(H+p)+p, cols*(W+p)+p, C) image."""
  n, h, w, c = images_unit.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c),
                  np.uint8)
  for i, image in enumerate(to_uint8(images_unit)):
    top = padding + (i // columns) * (h + padding)
    left = padding + (i % columns) * (w + padding)
    grid[top:top + h, left:left + w] = image
  return grid


def save_png(path: str, image_uint8: np.ndarray) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tf.io.write_file(path, tf.io.encode_png(image_uint8))
