"""Robust outlier thresholds for scores with a heavy upper tail.

A score (larger = more unusual) becomes a robust z-score: distance of its log from the
median log in units of the MAD, so the outliers themselves do not move the yardstick.
"""

from __future__ import annotations

import numpy as np

MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation.


def robust_z(scores: np.ndarray) -> np.ndarray:
  """(log(score) - median) / (1.4826 MAD): how many 'standard deviations' above typical.
  Log, because these scores are positive and skewed."""
  logs = np.log(np.maximum(np.asarray(scores, np.float64), 1e-12))
  median = np.median(logs)
  mad = MAD_TO_STD * np.median(np.abs(logs - median))
  return (logs - median) / max(mad, 1e-12)


def flag_outliers(z: np.ndarray, z_threshold: float) -> np.ndarray:
  """Ids with z above the threshold, most unusual first."""
  ids = np.flatnonzero(z > z_threshold)
  return ids[np.argsort(-z[ids], kind="stable")]
