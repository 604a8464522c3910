"""Distances between a set of real and a set of generated feature vectors.

Every metric here compares two point clouds in a feature space (a classifier's penultimate
layer, see feature_classifier.py), so the numbers are only comparable between reports that
name the same feature network. Pairwise distances are computed by a jitted function over
row chunks, so 10k x 10k sets never materialise a 10k x 10k matrix on the host.

- FID (Heusel et al. 2017): Frechet distance of Gaussians fitted to the two sets.
- KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel.
- Precision / recall (Kynkaanniemi et al. 2019): the share of fakes inside the real
  k-NN manifold, and of reals inside the fake one.
- Density / coverage (Naeem et al. 2020): how many real k-NN balls hold each fake, on
  average (over k); the share of real balls that hold at least one fake.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

_CHUNK = 1024  # Query rows per jitted distance call.


def _sq_distances_less_query_norm(queries: jax.Array, points: jax.Array) -> jax.Array:
  """(Q, P) |p|^2 - 2 q.p: the squared distance less |q|^2, which is the same along a row,
  so nearest-neighbour searches can rank on this and add |q|^2 to the winners only."""
  return jnp.sum(points**2, 1)[None, :] - 2 * queries @ points.T


def _with_query_norm(best: jax.Array, queries: jax.Array) -> jax.Array:
  """(Q,) partial distances -> squared distances, clipped at 0 against rounding."""
  return jnp.maximum(best + jnp.sum(queries**2, 1), 0.0)


@jax.jit
def _sq_distances(queries: jax.Array, points: jax.Array) -> jax.Array:
  """(Q, D), (P, D) -> (Q, P) squared Euclidean distances, clipped at 0 against rounding."""
  partial = _sq_distances_less_query_norm(queries, points)
  return jnp.maximum(partial + jnp.sum(queries**2, 1)[:, None], 0.0)


@functools.partial(jax.jit, static_argnames="k")
def _kth_smallest(queries, points, k: int):
  """(Q, D), (P, D) -> (Q,) k-th smallest squared distance from each query to the points.

  Masks the row minimum k - 1 times and takes the minimum after: O(kP) per row, where
  lax.top_k sorts and is ~20x slower on CPU at k = 4.
  """
  partial = _sq_distances_less_query_norm(queries, points)
  rows = jnp.arange(partial.shape[0])
  mask_row_minimum = lambda _, d: d.at[rows, jnp.argmin(d, axis=1)].set(jnp.inf)
  partial = jax.lax.fori_loop(0, k - 1, mask_row_minimum, partial)
  return _with_query_norm(jnp.min(partial, axis=1), queries)


def _in_chunks(fn, queries: np.ndarray, *args, pass_offset: bool = False):
  """Applies fn(query_chunk, [first_row,] *args) over row chunks, padding the last one.

  fn returns an array or a tuple of arrays with one row per query; so does this.
  """
  outs = []
  for start in range(0, len(queries), _CHUNK):
    chunk = queries[start:start + _CHUNK]
    pad = _CHUNK - len(chunk) if len(queries) > _CHUNK else 0
    padded = np.pad(chunk, ((0, pad), (0, 0))) if pad else chunk
    offset = (start,) if pass_offset else ()
    result = fn(jnp.asarray(padded), *offset, *args)
    outs.append(jax.tree.map(lambda x, n=len(chunk): np.asarray(x)[:n], result))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)


def kth_nearest_distances(queries: np.ndarray, points: np.ndarray, k: int) -> np.ndarray:
  """Distance from each query to its k-th nearest point, (Q,)."""
  sq = _in_chunks(lambda q, p: _kth_smallest(q, p, k), queries, jnp.asarray(points))
  return np.sqrt(sq)


def knn_radii(points: np.ndarray, k: int) -> np.ndarray:
  """Distance from each point to its k-th nearest other point, (N,)."""
  # The nearest point is the point itself (distance 0), so ask for k + 1.
  return kth_nearest_distances(points, points, k + 1)


def nearest_distances(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
  """Distance from each query to its nearest point, (Q,)."""
  return kth_nearest_distances(queries, points, 1)


@jax.jit
def _nearest_other(queries, first_row, points):
  """Index of and distance to each query's nearest point, where query i is point
  first_row + i and may not be its own neighbour."""
  partial = _sq_distances_less_query_norm(queries, points)
  rows = jnp.arange(partial.shape[0])
  partial = partial.at[rows, first_row + rows].set(jnp.inf)  # Past the end: dropped.
  nearest = jnp.argmin(partial, axis=1)
  return nearest, jnp.sqrt(_with_query_norm(partial[rows, nearest], queries))


def nearest_other_points(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """For each point, the index of and distance to its nearest *other* point, (N,) each.

  Exact copies count: their distance is 0, which is how duplicates are found.
  """
  return _in_chunks(_nearest_other, points, jnp.asarray(points), pass_offset=True)


@jax.jit
def _ball_counts(queries, centres, radii):
  """How many balls B(centre_i, radius_i) hold each query, (Q,)."""
  return jnp.sum(_sq_distances(queries, centres) <= radii[None, :] ** 2, axis=1)


def ball_counts(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
  return _in_chunks(_ball_counts, queries, jnp.asarray(centres), jnp.asarray(radii))


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
  """FID: |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r^1/2 S_f S_r^1/2)^1/2), in float64."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  mu_r, mu_f = real.mean(0), fake.mean(0)
  cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
  # tr sqrt(S_r S_f) via the symmetric form, whose eigenvalues are real and >= 0.
  values, vectors = np.linalg.eigh(cov_r)
  sqrt_r = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
  middle = np.linalg.eigvalsh(sqrt_r @ cov_f @ sqrt_r)
  trace_sqrt = np.sum(np.sqrt(np.clip(middle, 0, None)))
  return float(np.sum((mu_r - mu_f) ** 2) + np.trace(cov_r) + np.trace(cov_f) - 2 * trace_sqrt)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """KID: mean and std over random subsets of the unbiased MMD^2 estimate, with
  k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018)."""
  rng = np.random.default_rng(seed)
  size = min(subset_size, len(real), len(fake))
  estimates = [float(_unbiased_mmd2(jnp.asarray(real[rng.choice(len(real), size, False)]),
                                    jnp.asarray(fake[rng.choice(len(fake), size, False)])))
               for _ in range(num_subsets)]
  return float(np.mean(estimates)), float(np.std(estimates))


@jax.jit
def _unbiased_mmd2(x, y):
  dim, m = x.shape[1], x.shape[0]
  kernel = lambda a, b: (a @ b.T / dim + 1.0) ** 3
  k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
  off_diagonal = lambda k: (jnp.sum(k) - jnp.trace(k)) / (m * (m - 1))
  return off_diagonal(k_xx) + off_diagonal(k_yy) - 2 * jnp.mean(k_xy)


def manifold_metrics(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict:
  """Precision, recall, density, coverage, plus each fake's in-manifold flag.

  Returns scalars and "fake_in_real_manifold" (F,) bool, the per-sample precision whose
  complement is the off-manifold (hallucination) indicator.
  """
  real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
  counts = ball_counts(fake, real, real_radii)  # Real balls holding each fake.
  in_manifold = counts > 0
  recall = float(np.mean(ball_counts(real, fake, fake_radii) > 0))
  return {
      "precision": float(np.mean(in_manifold)),
      "recall": recall,
      "density": float(np.sum(counts) / (k * len(fake))),
      # A real ball is covered when the fake nearest its centre lies inside it.
      "coverage": float(np.mean(nearest_distances(real, fake) <= real_radii)),
      "fake_in_real_manifold": in_manifold,
  }
