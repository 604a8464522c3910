"""Labels from the images alone: k-means clusters of the pixels, for self-conditioning.

A GAN given no labels spends much of its capacity between the modes of the data: the
unconditional 28x28 recipe drew a third of its digits as no digit the classifier could
name. Conditioning G and D on clusters of the training images (a self-conditioned GAN,
Liu et al. 2020, "Diverse Image Generation via Self-Conditioned GANs") gives the
projection D and class-conditional G of the conditional recipe something to condition
on without using a single label; sampling then draws clusters in their training shares.
Pixel k-means is crude (50 MNIST clusters agree 81 % with the digits), but that is
enough: what G needs is a partition of the data into modes, not the right classes.
The same holds within a class: a conditional GAN on a few clusters of each class's images
(`fine_labels`) draws Fashion-MNIST closer to the real floor than on the classes alone.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.data.images import ImageData
from aigc_jax.errors import InvalidInputError

CLUSTER_STREAM = 5  # Random stream of the first centres (see training_split.SUBSET_STREAM).


def _seeded_centres(points: jax.Array, key: jax.Array, num_clusters: int) -> jax.Array:
  """k-means++ (Arthur and Vassilvitskii 2007): each next centre a point drawn with
  probability proportional to its squared distance from the centres so far, so no two
  start inside one group, where Lloyd's iterations would leave them."""
  sq_distance = lambda centre: ((points - centre) ** 2).sum(1)
  first = points[jax.random.randint(jax.random.fold_in(key, 0), (), 0, points.shape[0])]
  centres = jnp.zeros((num_clusters, points.shape[1]), points.dtype).at[0].set(first)

  def add(i, carry):
    centres, nearest = carry
    logits = jnp.where(nearest > 0, jnp.log(jnp.maximum(nearest, 1e-30)), -jnp.inf)
    centre = points[jax.random.categorical(jax.random.fold_in(key, i), logits)]
    return centres.at[i].set(centre), jnp.minimum(nearest, sq_distance(centre))

  return jax.lax.fori_loop(1, num_clusters, add, (centres, sq_distance(first)))[0]


@functools.partial(jax.jit, static_argnames=("num_clusters", "iterations"))
def _kmeans(points: jax.Array, key: jax.Array, num_clusters: int, iterations: int
            ) -> jax.Array:
  """Lloyd's iterations from k-means++ centres; returns each point's nearest final centre.
  A centre that loses all its points stays where it was rather than becoming NaN."""
  def nearest(centres):
    sq_distance = (centres * centres).sum(1) - 2.0 * points @ centres.T
    return sq_distance.argmin(1)

  def update(_, centres):
    members = jax.nn.one_hot(nearest(centres), num_clusters, dtype=points.dtype)
    counts = members.sum(0)[:, None]
    return jnp.where(counts > 0, members.T @ points / jnp.maximum(counts, 1.0), centres)

  centres = _seeded_centres(points, key, num_clusters)
  return nearest(jax.lax.fori_loop(0, iterations, update, centres))


def kmeans_clusters(images: np.ndarray, num_clusters: int, seed: int = 0,
                    iterations: int = 30) -> np.ndarray:
  """int32 (N,): the k-means cluster of each uint8 image's pixels (scaled to [0, 1]).

  Deterministic for a seed on a given machine; another backend may sum in another order
  and move a few boundary images."""
  if not 1 <= num_clusters <= len(images):
    raise InvalidInputError(f"{num_clusters} k-means clusters of {len(images)} images: "
                            f"give 1..{len(images)} (data.cluster_labels).")
  points = jnp.asarray(images.reshape(len(images), -1), jnp.float32) / 255.0
  key = jax.random.fold_in(jax.random.key(seed), CLUSTER_STREAM)
  return np.asarray(_kmeans(points, key, num_clusters, iterations), np.int32)


def agreement(clusters: np.ndarray, labels: np.ndarray) -> float:
  """Cluster purity: the share of examples whose label is their cluster's commonest."""
  return sum(np.bincount(labels[clusters == c]).max() for c in np.unique(clusters)) / len(labels)


def fine_labels(data: ImageData, per_class: int, seed: int = 0, log=print) -> ImageData:
  """`data` with each class split into `per_class` k-means clusters of its images: example
  i's label becomes class * per_class + its cluster, of num_classes * per_class in all.

  A conditional GAN on such labels sees each class as a handful of modes (a T-shirt's
  styles, a seven with or without its bar), as a self-conditioned one sees the data;
  `classes_of` maps a fine label back to its class, `draw_fine` a class to a fine label."""
  fine = np.zeros_like(data.labels)
  for c in np.unique(data.labels):
    members = np.flatnonzero(data.labels == c)
    clusters = kmeans_clusters(data.images[members], min(per_class, len(members)), seed)
    fine[members] = c * per_class + clusters
  sizes = np.bincount(fine, minlength=data.num_classes * per_class)
  log(f"Labels refined into {per_class} k-means clusters of each class's pixels: "
      f"{sizes.min()}-{sizes.max()} images each.")
  return ImageData(data.images, fine, data.num_classes * per_class)


def classes_of(fine: np.ndarray, per_class: int) -> np.ndarray:
  """The class of each fine label (`fine_labels`)."""
  return np.asarray(fine) // per_class


def draw_fine(classes: np.ndarray, fine_shares: np.ndarray, per_class: int,
              seed: int) -> np.ndarray:
  """int32: for each class asked for, one of its fine labels, drawn in their shares of the
  training split (`fine_shares`, (num_classes * per_class,)); a class absent from the
  split draws its clusters evenly."""
  shares = np.asarray(fine_shares, np.float64).reshape(-1, per_class)
  totals = shares.sum(1, keepdims=True)
  within = np.where(totals > 0, shares / np.where(totals > 0, totals, 1.0), 1.0 / per_class)
  classes = np.asarray(classes, np.int64)
  below = np.random.default_rng([CLUSTER_STREAM, seed]).random(len(classes))[:, None]
  sub = np.minimum((below > np.cumsum(within[classes], axis=1)).sum(1), per_class - 1)
  return (classes * per_class + sub).astype(np.int32)


def clustered(data: ImageData, num_clusters: int, seed: int = 0, log=print) -> ImageData:
  """`data` with its labels replaced by `num_clusters` k-means clusters of its images."""
  clusters = kmeans_clusters(data.images, num_clusters, seed)
  sizes = np.bincount(clusters, minlength=num_clusters)
  log(f"Labels replaced by {num_clusters} k-means clusters of the pixels (self-conditioning):"
      f" {sizes.min()}-{sizes.max()} images each, {agreement(clusters, data.labels):.1%} "
      "agreement with the dataset's labels.")
  return ImageData(data.images, clusters, num_clusters)
