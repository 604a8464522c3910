"""Label issues: out-of-sample probabilities from the project's own cross-validated JAX
classifiers, filtered and ranked by cleanlab, the field's maintained implementation of
confident learning (Northcutt, Jiang & Chuang 2021).

1. Out-of-sample probabilities: k classifiers, each trained on k-1 folds of the split and
   asked about the fold it never saw, so no example's probability comes from a network
   that fitted its (possibly wrong) label.
2. cleanlab estimates the joint of given and true labels from them (per-class thresholds,
   the confident joint, calibrated to the label counts) and filters the examples most
   likely mislabelled; `prune_by_noise_rate`, its default, removes from each off-diagonal
   cell of the joint the examples with the largest margin p_other - p_given. Its plain
   `confident_learning` filter is the off-diagonal of the confident joint alone (what this
   project hand-wrote before; measured in docs/data_quality.md).
3. Issues are ranked by a label-quality score of cleanlab.rank (self-confidence p_given,
   normalised margin, or confidence-weighted entropy), the worst first.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import cleanlab
import cleanlab.filter
import numpy as np

from aigc_jax.data.images import ImageData
from aigc_jax.errors import InvalidInputError
from aigc_jax.metrics.feature_classifier import (ClassifierSettings, features_and_probs,
                                                 train_classifier)
from aigc_jax.metrics.sample_sets import kth_nearest_distances

FOLD_STREAM = 2  # See corrupt.CORRUPTION_STREAM.
# cleanlab.filter.find_label_issues(filter_by=...) methods, and cleanlab.rank scores.
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
           "predicted_neq_given", "low_normalized_margin", "low_self_confidence")
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
DEFAULT_FILTER = "prune_by_noise_rate"
DEFAULT_RANKING = "self_confidence"


def fold_ids(num_examples: int, folds: int, seed: int) -> list[np.ndarray]:
  """A random partition of range(num_examples) into `folds` near-equal sorted parts."""
  if not 2 <= folds <= num_examples:
    raise InvalidInputError(f"Cross-validation needs 2 <= folds <= {num_examples}; got {folds}.")
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


def find_label_issues(labels: np.ndarray, probs: np.ndarray,
                      method: str = DEFAULT_FILTER, ranking: str = DEFAULT_RANKING
                      ) -> np.ndarray:
  """Ids of likely label errors, the likeliest first: cleanlab's filter `method` over the
  out-of-sample probabilities, ranked by its label-quality score `ranking`."""
  if method not in FILTERS:
    raise InvalidInputError(f"Unknown label filter '{method}'; cleanlab's are {list(FILTERS)} "
                            "(config.label_filter).")
  if ranking not in RANKINGS:
    raise InvalidInputError(f"Unknown label ranking '{ranking}'; cleanlab's are {list(RANKINGS)} "
                            "(config.label_ranking).")
  # n_jobs=1: the filter takes well under a second; worker processes only add start-up.
  return np.asarray(cleanlab.filter.find_label_issues(
      labels, probs, filter_by=method, return_indices_ranked_by=ranking, n_jobs=1),
                    np.int64)


def library_card(method: str, ranking: str) -> dict:
  """What report.json records of the label filter: library, version, settings."""
  return {"library": "cleanlab", "version": cleanlab.__version__, "filter_by": method,
          "ranked_by": ranking}
