"""Sample-set metrics against hand-computed answers on point sets built to have them."""

import numpy as np
import pytest
import scipy.linalg

from aigc_jax.metrics import sample_sets
from aigc_jax.metrics.image_report import class_statistics, memorisation, unassignable_share

# Rows with zero column means and orthogonal columns: np.cov of mu + sigma * DESIGN is
# exactly diag(sigma^2) * 4/3 (np.cov divides by N - 1 = 3).
DESIGN = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])


def test_fid_is_zero_for_identical_sets_and_matches_closed_forms():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(500, 6))
  assert abs(sample_sets.frechet_distance(x, x)) < 1e-8
  mu_a, sigma_a = np.array([1.0, 2.0]), np.array([1.0, 3.0])
  mu_b, sigma_b = np.array([0.0, 0.0]), np.array([2.0, 1.0])
  a, b = mu_a + sigma_a * DESIGN, mu_b + sigma_b * DESIGN
  # Commuting (diagonal) covariances: |mu_a - mu_b|^2 + sum (s_a - s_b)^2, s = std.
  expected = 5.0 + (4 / 3) * np.sum((sigma_a - sigma_b) ** 2)
  np.testing.assert_allclose(sample_sets.frechet_distance(a, b), expected, rtol=1e-9)
  # General covariances: the textbook formula with scipy's matrix square root.
  y = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 0.5
  ca, cb = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  textbook = (np.sum((x.mean(0) - y.mean(0)) ** 2)
              + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real))
  np.testing.assert_allclose(sample_sets.frechet_distance(x, y), textbook, rtol=1e-6)


def test_kid_estimate_is_unbiased_on_one_distribution():
  rng = np.random.default_rng(1)
  draws = [float(sample_sets._unbiased_mmd2(rng.normal(size=(40, 4)).astype(np.float32),
                                            rng.normal(size=(40, 4)).astype(np.float32)))
           for _ in range(300)]
  mean, stderr = np.mean(draws), np.std(draws) / np.sqrt(len(draws))
  assert abs(mean) < 3 * stderr
  shifted = sample_sets.kernel_inception_distance(rng.normal(size=(200, 4)),
                                                  rng.normal(size=(200, 4)) + 1.0, 10, 100)
  assert shifted[0] > 3 * shifted[1] > 0


def test_precision_recall_density_coverage_on_a_line():
  real = np.arange(10.0)[:, None]  # k=1 radii: 1 everywhere.
  fake = np.array([[0.2], [5.1], [100.0], [200.0]])
  m = sample_sets.manifold_metrics(real, fake, k=1)
  assert m["precision"] == 0.5  # 0.2 and 5.1 are inside real balls; 100, 200 are not.
  assert m["fake_in_real_manifold"].tolist() == [True, True, False, False]
  assert m["density"] == pytest.approx((2 + 2) / 4)  # Each inlier sits in two real balls.
  assert m["coverage"] == pytest.approx(0.4)  # Balls of 0, 1, 5, 6 hold a fake.
  # The outlier fake at 100 has a 94.9 radius: it "covers" reals 6..9, 0.2 covers 0..5.
  assert m["recall"] == 1.0


def test_distances_in_chunks_equal_brute_force():
  rng = np.random.default_rng(2)
  queries, points = rng.normal(size=(2500, 3)), rng.normal(size=(700, 3))
  points = np.concatenate([points, points[:60], points[:20]])  # Ties: k-th counts each copy.
  brute = np.sqrt(((queries[:, None] - points[None]) ** 2).sum(-1))
  np.testing.assert_allclose(sample_sets.nearest_distances(queries, points), brute.min(1),
                             rtol=1e-3, atol=1e-3)
  np.testing.assert_allclose(sample_sets.kth_nearest_distances(queries, points, 5),
                             np.sort(brute, axis=1)[:, 4], rtol=1e-3, atol=1e-3)
  self_brute = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
  np.testing.assert_allclose(sample_sets.knn_radii(points, 3),
                             np.sort(self_brute, axis=1)[:, 3], rtol=1e-3, atol=1e-3)


def test_memorisation_flags_exact_copies():
  rng = np.random.default_rng(3)
  train, real = rng.normal(size=(300, 5)), rng.normal(size=(100, 5))
  fake = np.concatenate([train[:25], rng.normal(size=(75, 5))])  # 25% copies.
  m = memorisation(fake, real, train)
  assert m["exact_copy_share"] == 0.25
  assert m["near_copy_share"] >= 0.25
  assert m["nn_train_distance_median"] > 0


def test_class_statistics_and_unassignable_share():
  uniform = np.eye(4)[np.arange(100) % 4]  # Confident and balanced over 4 classes.
  stats = class_statistics(uniform)
  assert stats["class_histogram"] == [0.25] * 4
  assert stats["class_entropy"] == pytest.approx(1.0)
  assert stats["classifier_score"] == pytest.approx(4.0, rel=1e-6)
  collapsed = class_statistics(np.eye(4)[np.zeros(100, int)])
  assert collapsed["class_entropy"] == 0.0 and collapsed["classifier_score"] == pytest.approx(1)
  probs = np.array([[0.95, 0.05], [0.5, 0.5], [0.2, 0.8], [0.99, 0.01]])
  assert unassignable_share(probs, 0.9) == 0.5


def test_nearest_other_point_skips_only_itself_and_finds_exact_copies():
  rng = np.random.default_rng(3)
  points = rng.normal(size=(1500, 4)).astype(np.float32)
  points[1400] = points[7]  # An exact copy, in another row chunk.
  index, distance = sample_sets.nearest_other_points(points)
  brute = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
  np.fill_diagonal(brute, np.inf)
  assert index[7] == 1400 and index[1400] == 7 and distance[7] < 1e-3
  np.testing.assert_array_equal(index, brute.argmin(1))
  np.testing.assert_allclose(distance, brute.min(1), rtol=1e-3, atol=1e-3)
