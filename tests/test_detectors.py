"""Dirty-data detectors on small sets where the right answer is known."""

import json
import os
import subprocess
import sys

import cleanlab.filter
import numpy as np
import pytest

from aigc_jax.data import corrupt
from aigc_jax.data.images import ImageData
from aigc_jax.metrics.feature_classifier import ClassifierSettings
from aigc_jax.quality import clean, duplicates, label_issues, outliers, text_issues
from experiments.configs import clean as clean_configs
from tests.conftest import REPO_ROOT


def _random_images(n, seed=0, shape=(8, 8, 1)):
  return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_exact_duplicates_are_grouped_and_all_but_one_dropped():
  images = _random_images(50)
  images[10], images[20], images[7] = images[3], images[3], images[5]
  groups = duplicates.exact_duplicate_groups(images)
  assert [g.tolist() for g in groups] == [[3, 10, 20], [5, 7]]
  np.testing.assert_array_equal(duplicates.all_but_first(groups), [7, 10, 20])


def test_near_duplicates_found_and_distinct_images_left_alone():
  data = ImageData(_random_images(300), np.zeros(300, np.int32), 1)
  result = corrupt.corrupt(data, "near_duplicate=0.05", seed=0)
  embedding = duplicates.pixel_embedding(result.data.images, dims=32)
  groups, _ = duplicates.near_duplicate_groups(embedding, relative_threshold=0.2)
  found = {tuple(g) for g in groups}
  planted = {tuple(sorted((c, s))) for c, s in zip(result.ids("near_duplicate"),
                                                    result.source[result.ids("near_duplicate")])}
  assert found == planted


def _noisy_probabilities(n=300, classes=4, flip=0.2, seed=0):
  """Given labels with `flip` of them wrong, and probabilities that mostly know better."""
  rng = np.random.default_rng(seed)
  true = rng.integers(0, classes, n)
  given = np.where(rng.uniform(size=n) < flip, (true + rng.integers(1, classes, n)) % classes,
                   true)
  logits = rng.normal(0, 1, (n, classes)) + 3.0 * np.eye(classes)[true]
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  return given, probs, np.flatnonzero(given != true)


@pytest.mark.parametrize("method", label_issues.FILTERS)
@pytest.mark.parametrize("ranking", label_issues.RANKINGS)
def test_label_issues_are_cleanlabs_id_for_id(method, ranking):
  labels, probs, _ = _noisy_probabilities()
  want = cleanlab.filter.find_label_issues(labels, probs, filter_by=method,
                                           return_indices_ranked_by=ranking, n_jobs=1)
  np.testing.assert_array_equal(label_issues.find_label_issues(labels, probs, method, ranking),
                                want)


def test_the_default_filter_finds_the_flipped_labels_worst_first():
  labels, probs, flipped = _noisy_probabilities()
  issues = label_issues.find_label_issues(labels, probs)
  hits = len(np.intersect1d(issues, flipped))
  assert hits / len(issues) >= 0.85 and hits / len(flipped) >= 0.85
  self_confidence = probs[issues, labels[issues]]
  assert np.all(np.diff(self_confidence) >= 0)  # Least confident in the given label first.


def test_unknown_filter_or_ranking_names_the_choices():
  labels, probs, _ = _noisy_probabilities(n=40)
  with pytest.raises(ValueError, match="prune_by_noise_rate"):
    label_issues.find_label_issues(labels, probs, "prune_by_magic")
  with pytest.raises(ValueError, match="normalized_margin"):
    label_issues.find_label_issues(labels, probs, ranking="vibes")


def _quadrant_data(n=600, seed=0):
  """Class c lights up quadrant c of an 8x8 image: easy to learn, easy to check."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 4, n).astype(np.int32)
  images = rng.integers(0, 40, (n, 8, 8, 1)).astype(np.uint8)
  for c in range(4):
    rows, cols = (c // 2) * 4, (c % 2) * 4
    images[labels == c, rows:rows + 4, cols:cols + 4] = 220
  return ImageData(images, labels, 4)


def test_cross_validated_classifiers_find_planted_label_noise():
  result = corrupt.corrupt(_quadrant_data(), "symmetric_labels=0.1", seed=0)
  probs, _ = label_issues.out_of_sample_scores(
      result.data, folds=2, settings=ClassifierSettings(epochs=4, batch_size=30),
      log=lambda _: None)
  issues = label_issues.find_label_issues(result.data.labels, probs)
  planted = result.ids("symmetric_labels")
  hits = len(np.intersect1d(issues, planted))
  assert hits / len(issues) >= 0.9 and hits / len(planted) >= 0.9


def test_inverted_images_lie_far_from_their_neighbours_in_classifier_features():
  result = corrupt.corrupt(_quadrant_data(), "inversion=0.05", seed=0)
  scores = label_issues.out_of_sample_scores(
      result.data, folds=2, settings=ClassifierSettings(epochs=4, batch_size=30),
      neighbours=5, log=lambda _: None)
  planted = result.ids("inversion")
  farthest = np.argsort(-scores.neighbour_distance)[:len(planted)]
  assert len(np.intersect1d(farthest, planted)) >= 0.8 * len(planted)


def test_folds_partition_the_split():
  folds = label_issues.fold_ids(10, 3, seed=0)
  np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(10))
  assert sorted(len(f) for f in folds) == [3, 3, 4]


def test_repeated_long_lines_and_garbage_lines_are_flagged():
  words = ["king", "queen", "duke", "lord", "lady", "fool", "knight", "page"]
  prose = [f"and so the {w} went down to the river on day {day}"
           for day in range(10) for w in words]
  lines = prose[:40] + ["Visit our site for more free plays today"] * 3 + ["ROMEO:"] * 5
  lines += prose[40:] + ["xq#zv!kw@pj&", "zzq$xv%jk#qw"]
  repeated = text_issues.repeated_lines(lines, min_length=20, min_count=3)
  np.testing.assert_array_equal(repeated, [40, 41, 42])  # Not the short speaker tags.
  surprisal = text_issues.line_surprisal(lines)
  assert np.argsort(surprisal)[-2:].tolist() in ([len(lines) - 2, len(lines) - 1],
                                                 [len(lines) - 1, len(lines) - 2])


def test_cleaning_report_scores_detectors_against_ground_truth():
  data = ImageData(_random_images(400, seed=1), np.zeros(400, np.int32), 1)
  truth = corrupt.corrupt(data, "exact_duplicate=0.05,near_duplicate=0.05", seed=0)
  config = clean_configs.get_config("tiny")
  config.detectors = "exact_duplicates,near_duplicates"
  report, exclude, _, _ = clean.clean(config, truth.data, truth, log=lambda _: None)
  exact = report["detectors"]["exact_duplicates"]
  assert exact["groups"] == 20 and exact["vs_ground_truth"]["precision"] == 1.0
  assert exact["vs_ground_truth"]["recall"] == 1.0  # Its targets: exact copies only.
  assert report["detectors"]["near_duplicates"]["vs_ground_truth"]["recall"] == 1.0
  shares = report["excluded_share_by_kind"]
  assert shares["exact_duplicate"] == shares["near_duplicate"] == 1.0
  assert shares["clean"] == 0.0
  assert len(exclude) == 40  # One member of each of the 40 planted pairs.


def run_clean_data(variant: str, workdir, *flags: str) -> dict:
  """experiments.clean_data as a user runs it; returns its report.json."""
  result = subprocess.run(
      [sys.executable, "-m", "experiments.clean_data",
       f"--config=experiments/configs/clean.py:{variant}", f"--workdir={workdir}", *flags],
      cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, "report.json")) as f:
    return json.load(f)


def test_clean_data_cli_writes_report_grid_and_exclude_file(image_folder, tmp_path):
  report = run_clean_data(
      "tiny", tmp_path, "--config.data.name=image_folder",
      f"--config.data.image_folder={image_folder}",
      "--config.data.corrupt=symmetric_labels=0.25,exact_duplicate=0.25")
  assert report["injected"] == {"clean": 16, "symmetric_labels": 8, "exact_duplicate": 8}
  assert set(report["detectors"]) == {"exact_duplicates", "near_duplicates", "label_issues",
                                      "outliers"}
  assert report["detectors"]["label_issues"]["method"] == {
      "library": "cleanlab", "version": cleanlab.__version__,
      "filter_by": "prune_by_noise_rate", "ranked_by": "self_confidence"}
  assert report["detectors"]["exact_duplicates"]["vs_ground_truth"]["recall"] == 1.0
  exclude = np.load(tmp_path / "exclude.npy")
  assert exclude.dtype.kind == "i" and len(exclude) == report["exclude_count"] >= 8
  assert (tmp_path / "flagged.png").stat().st_size > 0
  assert (tmp_path / "corruption.npz").exists()
  assert np.load(tmp_path / "out_of_sample_probs.npy").shape == (32, 2)


def test_outliers_are_the_unconfident_and_the_improbable():
  confident = np.tile([[0.8, 0.1, 0.1]], (100, 1))  # Label noise: typical max p is 0.8.
  confident[[3, 50]] = [0.4, 0.3, 0.3]  # Half the median: no class.
  confident[7] = [0.25, 0.4, 0.35]  # Below a third of the median.
  neg_elbo = np.random.default_rng(0).normal(100.0, 5.0, 100)
  neg_elbo[[10, 20]] = 400.0
  flagged, counts = outliers.find_outliers(None, neg_elbo, confidence_ratio=1 / 3,
                                           z_threshold=3.5)
  assert sorted(flagged) == [10, 20] and counts == {"high_neg_elbo": 2}
  flagged, counts = outliers.find_outliers(confident, neg_elbo, confidence_ratio=0.6,
                                           z_threshold=3.5)
  assert sorted(flagged) == [3, 7, 10, 20, 50]
  assert counts == {"unconfident": 3, "high_neg_elbo": 2}
  distance = np.random.default_rng(1).normal(10.0, 1.0, 100)
  distance[[60, 70]] = 30.0
  flagged, counts = outliers.find_outliers(confident, neg_elbo, distance,
                                           confidence_ratio=0.6, z_threshold=3.5)
  assert sorted(flagged) == [3, 7, 10, 20, 50, 60, 70]
  assert counts["far_from_neighbours"] == 2


def test_pixel_statistics_single_out_inverted_occluded_and_blurred_digits():
  rng = np.random.default_rng(0)
  images = np.zeros((300, 16, 16, 1), np.uint8)
  for image in images:  # A stroke across and one down, of random place, length and width.
    row, col, length, width = rng.integers(2, 11), rng.integers(2, 11), rng.integers(9, 13), 2
    image[row:row + width, 2:2 + length] = rng.integers(180, 256)
    image[2:2 + length, col:col + width] = rng.integers(180, 256)
  images[0] = 255 - images[0]  # Inverted.
  images[1, :8, :8] = 255  # Occluded.
  images[2] = np.clip(np.round(corrupt.gaussian_blur(images[2:3].astype(np.float32), 1.5)),
                      0, 255)[0]  # Blurred.
  z = {name: outliers.robust_z(score)
       for name, score in outliers.pixel_statistics(images).items()}
  assert z["bright"][0] > 3.5 and z["bright"][1] > 3.5 and z["unsharp"][2] > 3.5
  clean_flags = (z["bright"][3:] > 3.5) | (z["unsharp"][3:] > 3.5)
  assert clean_flags.mean() < 0.02
  flagged, counts = outliers.find_outliers(None, None, confidence_ratio=1 / 3,
                                           z_threshold=3.5,
                                           pixel_scores=outliers.pixel_statistics(images))
  assert {0, 1, 2} <= set(flagged.tolist()) and set(counts) == {"high_bright", "high_unsharp"}
