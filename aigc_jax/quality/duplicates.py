"""Exact and near-duplicate images.

Exact copies are found by hashing each image's bytes (np.unique over byte rows). Near
copies -- the same picture re-encoded, re-scanned or re-scaled in brightness -- by nearest
neighbours in a pixel embedding that ignores overall contrast: each image scaled to unit
length and projected on the split's top principal components. A pair is a near copy when
its distance is below `relative_threshold` times the split's median nearest-neighbour
distance, so the threshold adapts to the dataset instead of being a pixel constant.
Duplicates form groups (connected components of such pairs); cleaning keeps one per group.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from aigc_jax.metrics.sample_sets import nearest_other_points


def exact_duplicate_groups(images: np.ndarray) -> list[np.ndarray]:
  """Groups (sorted ids, size >= 2) of byte-identical images."""
  rows = np.ascontiguousarray(images.reshape(len(images), -1))
  keys = rows.view(np.dtype((np.void, rows.shape[1])))[:, 0]
  _, group_of, sizes = np.unique(keys, return_inverse=True, return_counts=True)
  return _groups(group_of.ravel(), sizes)


def pixel_embedding(images: np.ndarray, dims: int = 64, fit_examples: int = 10_000,
                    seed: int = 0) -> np.ndarray:
  """(N, H, W, C) -> (N, dims) float32: unit-length pixels on their top principal axes
  (fitted on a random subset: the axes of 10k MNIST digits are those of 60k)."""
  flat = images.reshape(len(images), -1).astype(np.float32)
  flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)
  rng = np.random.default_rng(seed)
  fit = flat[rng.choice(len(flat), min(fit_examples, len(flat)), replace=False)]
  mean = fit.mean(0)
  _, _, axes = np.linalg.svd(fit - mean, full_matrices=False)
  return ((flat - mean) @ axes[:dims].T).astype(np.float32)


def near_duplicate_groups(embedding: np.ndarray, relative_threshold: float = 0.2
                          ) -> tuple[list[np.ndarray], np.ndarray]:
  """Groups of near copies, and each example's nearest-neighbour distance (N,) relative to
  the median one (the score that was thresholded)."""
  neighbour, distance = nearest_other_points(embedding)
  relative = distance / max(float(np.median(distance)), 1e-12)
  close = np.flatnonzero(relative <= relative_threshold)
  n = len(embedding)
  graph = scipy.sparse.coo_matrix((np.ones(len(close)), (close, neighbour[close])),
                                  shape=(n, n))
  _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
  sizes = np.bincount(component)
  return _groups(component, sizes), relative


def _groups(group_of: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
  """Members of every group with two or more, each sorted, ordered by first member."""
  members = np.flatnonzero(sizes[group_of] >= 2)
  order = np.argsort(group_of[members], kind="stable")
  members = members[order]
  splits = np.flatnonzero(np.diff(group_of[members])) + 1
  groups = np.split(members, splits) if len(members) else []
  return sorted(groups, key=lambda g: g[0])


def all_but_first(groups: list[np.ndarray]) -> np.ndarray:
  """The ids cleaning drops: every group member except its lowest id."""
  return np.sort(np.concatenate([g[1:] for g in groups])) if groups else np.zeros(0, np.int64)
