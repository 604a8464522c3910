"""How well a membership-inference score separates training members from non-members.

An attack gives every candidate example a score, higher meaning "more likely a member"
(for instance minus its loss, or the discriminator's logit). Reported, as the privacy
literature does: ROC AUC (0.5 = chance), the true-positive rate at 1 % and 0.1 % false
positives (what an attacker who must rarely be wrong gets), and a bootstrap confidence
interval of the AUC over resampled members and non-members.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def balanced_sets(member_ids: np.ndarray, nonmember_ids: np.ndarray, size: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
  """`size` members and `size` non-members drawn without replacement by `seed` (size is
  capped by the smaller pool), so an AUC of 0.5 means chance."""
  rng = np.random.default_rng(seed)
  size = min(size, len(member_ids), len(nonmember_ids))
  return (np.sort(rng.choice(member_ids, size, replace=False)),
          np.sort(rng.choice(nonmember_ids, size, replace=False)))


def roc_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
  """P(a member outscores a non-member), ties counting one half (Mann-Whitney U)."""
  ranks = rankdata(np.concatenate([member_scores, nonmember_scores]))  # Ties averaged.
  m, n = len(member_scores), len(nonmember_scores)
  return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr: float) -> float:
  """The share of members scoring above the threshold that at most `fpr` of non-members
  exceed."""
  threshold = np.quantile(nonmember_scores, 1.0 - fpr, method="lower")
  return float(np.mean(member_scores > threshold))


def attack_report(member_scores: np.ndarray, nonmember_scores: np.ndarray, *,
                  bootstrap: int = 1000, seed: int = 0) -> dict:
  """AUC with a 95 % bootstrap interval, and TPR at 1 % and 0.1 % FPR."""
  member_scores = np.asarray(member_scores, np.float64)
  nonmember_scores = np.asarray(nonmember_scores, np.float64)
  rng = np.random.default_rng(seed)
  resampled = [roc_auc(rng.choice(member_scores, len(member_scores)),
                       rng.choice(nonmember_scores, len(nonmember_scores)))
               for _ in range(bootstrap)]
  return {"roc_auc": roc_auc(member_scores, nonmember_scores),
          "roc_auc_ci95": [float(np.percentile(resampled, 2.5)),
                           float(np.percentile(resampled, 97.5))],
          "tpr_at_1pct_fpr": tpr_at_fpr(member_scores, nonmember_scores, 0.01),
          "tpr_at_0.1pct_fpr": tpr_at_fpr(member_scores, nonmember_scores, 0.001),
          "num_members": len(member_scores), "num_nonmembers": len(nonmember_scores)}


def roc_curve(member_scores: np.ndarray, nonmember_scores: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
  """(false-positive rates, true-positive rates) of every threshold, from (0, 0) to
  (1, 1); tied scores move both rates in one step."""
  scores = np.concatenate([member_scores, nonmember_scores])
  is_member = np.concatenate([np.ones(len(member_scores)), np.zeros(len(nonmember_scores))])
  order = np.argsort(-scores, kind="stable")
  true_pos, false_pos = np.cumsum(is_member[order]), np.cumsum(1.0 - is_member[order])
  last_of_tie = np.append(np.flatnonzero(np.diff(scores[order])), len(scores) - 1)
  return (np.append(0.0, false_pos[last_of_tie] / len(nonmember_scores)),
          np.append(0.0, true_pos[last_of_tie] / len(member_scores)))
