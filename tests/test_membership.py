"""Membership-inference scoring: AUC, TPR at low FPR and the bootstrap interval, on
scores whose answer is known."""

import numpy as np
import pytest

from aigc_jax.metrics.membership import attack_report, balanced_sets, roc_auc, tpr_at_fpr


def test_auc_counts_pairs_and_ties():
  assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
  assert roc_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
  # Pairs: (2>1), (2<3), (5>1), (5>3), and 2 vs 2 a tie: (1 + 0 + 1 + 1 + 0.5 + 1) / 6.
  assert roc_auc(np.array([2.0, 5.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(4.5 / 6)


def test_a_leaky_score_is_found_and_a_blind_one_is_chance():
  rng = np.random.default_rng(0)
  leaky = attack_report(rng.normal(3.0, 1.0, 2000), rng.normal(0.0, 1.0, 2000), bootstrap=200)
  assert leaky["roc_auc"] > 0.97 and leaky["tpr_at_1pct_fpr"] > 0.5
  low, high = leaky["roc_auc_ci95"]
  assert low < leaky["roc_auc"] < high
  blind = attack_report(rng.normal(size=2000), rng.normal(size=2000), bootstrap=200)
  assert abs(blind["roc_auc"] - 0.5) < 0.03
  assert blind["roc_auc_ci95"][0] < 0.5 < blind["roc_auc_ci95"][1]
  assert blind["tpr_at_1pct_fpr"] < 0.03


def test_tpr_at_fpr_uses_the_non_members_quantile():
  nonmembers = np.arange(100.0)  # 1 % of them exceed 98.
  members = np.array([98.5, 99.5, 50.0, 97.0])
  assert tpr_at_fpr(members, nonmembers, 0.01) == 0.5


def test_balanced_sets_are_equal_sized_and_seeded():
  members, others = balanced_sets(np.arange(10), np.arange(100, 200), 30, seed=1)
  assert len(members) == len(others) == 10 and set(others) <= set(range(100, 200))
  again = balanced_sets(np.arange(10), np.arange(100, 200), 30, seed=1)
  np.testing.assert_array_equal(others, again[1])
