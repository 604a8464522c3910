"""Outliers: examples unlike the rest of the split, whatever their label.

Two scores, each with a threshold that adapts to the split:
- uncertainty: an example whose out-of-sample max p(y|x) (label_issues.out_of_sample_probs)
  is below `confidence_ratio` x the split's median max p belongs to no class the
  classifiers learned -- foreign images, heavy occlusion, inversion. Relative to the
  median, because label noise makes the classifiers less sure of everything (at 20 %
  symmetric noise a clean digit gets max p ~0.8, not ~1);
- neg_elbo: a VAE's per-example negative ELBO with a robust z-score (median and MAD) above
  `z_threshold` -- pixels the generative model finds improbable (noise, blur).
k-NN distances in a pixel embedding were measured and left out: corrupted images of one
kind cluster with each other (1,800 Fashion-MNIST items among 60,000 digits score *lower*
than clean digits, ROC AUC 0.33).
An example is an outlier when any score flags it; outliers are ranked by their mean rank
percentile over the scores.
"""

from __future__ import annotations

import numpy as np

MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation.


def robust_z(scores: np.ndarray) -> np.ndarray:
  """(score - median) / (1.4826 MAD): 'standard deviations' above typical, measured so
  that the outliers themselves do not move the yardstick."""
  scores = np.asarray(scores, np.float64)
  median = np.median(scores)
  mad = MAD_TO_STD * np.median(np.abs(scores - median))
  return (scores - median) / max(mad, 1e-12)


def ranked(ids: np.ndarray, score: np.ndarray) -> np.ndarray:
  """`ids` ordered by `score`, highest first."""
  return ids[np.argsort(-score[ids], kind="stable")]


def unconfident(probs: np.ndarray, confidence_ratio: float) -> np.ndarray:
  """Ids whose max p(y|x) is below confidence_ratio x the median max p."""
  confidence = probs.max(1)
  return np.flatnonzero(confidence < confidence_ratio * np.median(confidence))


def rank_percentiles(score: np.ndarray) -> np.ndarray:
  """Each example's rank in [0, 1], 1 = highest score."""
  return np.argsort(np.argsort(score, kind="stable"), kind="stable") / max(len(score) - 1, 1)


def find_outliers(probs: np.ndarray | None, neg_elbo: np.ndarray | None, *,
                  confidence_ratio: float, z_threshold: float) -> tuple[np.ndarray, dict]:
  """Flagged ids (most unusual first) and how many each score flagged."""
  flagged, scores, counts = [], [], {}
  if probs is not None:
    ids = unconfident(probs, confidence_ratio)
    flagged.append(ids)
    scores.append(1.0 - probs.max(1))
    counts["unconfident"] = int(len(ids))
  if neg_elbo is not None:
    ids = np.flatnonzero(robust_z(neg_elbo) > z_threshold)
    flagged.append(ids)
    scores.append(neg_elbo)
    counts["high_neg_elbo"] = int(len(ids))
  if not flagged:
    raise ValueError("Outlier detection needs classifier probabilities or a VAE's ELBO.")
  combined = np.mean([rank_percentiles(s) for s in scores], axis=0)
  return ranked(np.unique(np.concatenate(flagged)), combined), counts
