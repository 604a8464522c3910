"""Label issues by confident learning (Northcutt, Jiang & Chuang 2021).

1. Out-of-sample probabilities: k classifiers, each trained on k-1 folds of the split and
   asked about the fold it never saw, so no example's probability comes from a network
   that fitted its (possibly wrong) label.
2. Per-class thresholds t_j: the mean probability of class j over the examples labelled j
   (how confident the model is, on average, about that class's own examples).
3. An example is *confidently* of class j when p_j >= t_j (the largest such p_j if several);
   an example confidently of a class other than its label is a label issue -- the
   off-diagonal of the confident joint. Issues are ranked by self-confidence p_label, the
   least confident first.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from aigc_jax.data.images import ImageData
from aigc_jax.metrics.feature_classifier import (ClassifierSettings, features_and_probs,
                                                 train_classifier)
from aigc_jax.metrics.sample_sets import kth_nearest_distances

NO_CLASS = -1
FOLD_STREAM = 2  # See corrupt.CORRUPTION_STREAM.


def fold_ids(num_examples: int, folds: int, seed: int) -> list[np.ndarray]:
  """A random partition of range(num_examples) into `folds` near-equal sorted parts."""
  if not 2 <= folds <= num_examples:
    raise ValueError(f"Cross-validation needs 2 <= folds <= {num_examples}; got {folds}.")
  order = np.random.default_rng([FOLD_STREAM, seed]).permutation(num_examples)
  return [np.sort(part) for part in np.array_split(order, folds)]


class OutOfSampleScores(NamedTuple):
  probs: np.ndarray  # (N, K) class probabilities.
  neighbour_distance: np.ndarray  # (N,) to the k-th nearest training example, in features.


def out_of_sample_scores(data: ImageData, folds: int = 4,
                         settings: ClassifierSettings = ClassifierSettings(epochs=2),
                         neighbours: int = 20, log=print) -> OutOfSampleScores:
  """Per example, from the fold model that did not train on it: class probabilities, and
  the distance in that model's feature space to the `neighbours`-th nearest example it
  did train on (an outlier score, see outliers.py)."""
  probs = np.zeros((len(data.images), data.num_classes), np.float32)
  distance = np.zeros(len(data.images), np.float32)
  for k, held_out in enumerate(fold_ids(len(data.images), folds, settings.seed)):
    keep = np.ones(len(data.images), bool)
    keep[held_out] = False
    log(f"cross-validation: fold {k + 1}/{folds}, training on {keep.sum()} examples")
    fold_settings = dataclasses.replace(settings, seed=settings.seed + k)
    model, params = train_classifier(
        ImageData(data.images[keep], data.labels[keep], data.num_classes), fold_settings,
        log=log)
    features, fold_probs = features_and_probs(model, params, data.images)
    probs[held_out] = fold_probs[held_out]
    distance[held_out] = kth_nearest_distances(features[held_out], features[keep],
                                               min(neighbours, int(keep.sum())))
  return OutOfSampleScores(probs, distance)


def per_class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
  """t_j = mean p_j over the examples labelled j, (K,); classes without examples: 1."""
  num_classes = probs.shape[1]
  counts = np.bincount(labels, minlength=num_classes)
  sums = np.bincount(labels, weights=probs[np.arange(len(labels)), labels],
                     minlength=num_classes)
  return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_classes(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
  """Each example's confident class (N,), or NO_CLASS where no p_j reaches t_j."""
  above = probs >= per_class_thresholds(labels, probs)[None, :]
  masked = np.where(above, probs, -np.inf)
  return np.where(above.any(1), np.argmax(masked, axis=1), NO_CLASS)


def confident_joint(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
  """(K, K) counts: row = given label, column = confident class."""
  num_classes = probs.shape[1]
  confident = confident_classes(labels, probs)
  has = confident != NO_CLASS
  return np.bincount(labels[has] * num_classes + confident[has],
                     minlength=num_classes**2).reshape(num_classes, num_classes)


def find_label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
  """Ids of the off-diagonal examples, least self-confident first."""
  confident = confident_classes(labels, probs)
  issues = np.flatnonzero((confident != NO_CLASS) & (confident != labels))
  self_confidence = probs[issues, labels[issues]]
  return issues[np.argsort(self_confidence, kind="stable")]
