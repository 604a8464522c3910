"""k-means clusters of the images as the labels a GAN trains on: of all images (a
self-conditioned GAN), or within each class (a conditional GAN on finer labels)."""

import json
import os

import numpy as np
import pytest

from aigc_jax.data.clusters import agreement, classes_of, draw_fine, fine_labels, kmeans_clusters
from aigc_jax.data.images import ImageData
from aigc_jax.data.training_split import class_shares, training_split
from aigc_jax.errors import InvalidInputError
from aigc_jax.metrics.run_evaluation import EvalOptions, evaluate_run
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.restore import class_count, generate_images, requested_labels, restore_run
from aigc_jax.train.sample_output import grid_columns
from experiments.configs import cgan, dcgan, vae
from tests.conftest import on_image_folder


def _blobs(per_blob=30, seed=0):
  """Three groups of 4x4 images around far-apart grey levels, in shuffled order."""
  rng = np.random.default_rng(seed)
  group = np.repeat(np.arange(3), per_blob)
  rng.shuffle(group)
  images = np.clip(np.array([20, 128, 235])[group][:, None, None, None]
                   + rng.integers(-15, 16, (len(group), 4, 4, 1)), 0, 255).astype(np.uint8)
  return images, group


def test_kmeans_finds_separated_groups_and_is_seeded():
  images, group = _blobs()
  clusters = kmeans_clusters(images, 3, seed=1)
  assert agreement(clusters, group) == 1.0 and agreement(group, clusters) == 1.0
  np.testing.assert_array_equal(clusters, kmeans_clusters(images, 3, seed=1))
  assert clusters.dtype == np.int32


def test_a_centre_left_without_points_stays_a_valid_cluster():
  images = np.repeat(np.array([0, 255], np.uint8), 5)[:, None, None, None]  # 2 distinct.
  clusters = kmeans_clusters(images, 4)
  assert set(np.unique(clusters)) <= set(range(4)) and len(np.unique(clusters)) == 2
  assert agreement(clusters, images[:, 0, 0, 0] // 255) == 1.0


def test_more_clusters_than_images_is_refused():
  with pytest.raises(InvalidInputError, match="4 k-means clusters of 3 images: give 1..3"):
    kmeans_clusters(np.zeros((3, 2, 2, 1), np.uint8), 4)


def test_cluster_labels_replace_the_training_labels_but_not_the_class_shares():
  images, group = _blobs()
  data = ImageData(images, (np.arange(len(images)) % 2).astype(np.int32), 2)
  config = dcgan.get_config("tiny")
  config.data.cluster_labels = 3
  logged = []
  clustered = training_split(config, data, log=logged.append)
  assert clustered.num_classes == 3 and clustered.images is data.images
  assert agreement(clustered.labels, group) == 1.0
  assert "3 k-means clusters" in logged[0] and "agreement with the dataset" in logged[0]
  np.testing.assert_allclose(class_shares(config, data, log=print), [1 / 3] * 3)
  np.testing.assert_allclose(class_shares(config, data, clusters=False), [0.5, 0.5])


def test_cluster_labels_are_refused_where_evaluation_reads_real_labels():
  config = vae.get_config("tiny")
  config.data.cluster_labels = 3
  images, _ = _blobs()
  with pytest.raises(InvalidInputError, match="a vae run .*cluster_labels=0"):
    training_split(config, ImageData(images, np.zeros(len(images), np.int32), 2))


def test_a_self_conditioned_gan_trains_samples_and_is_scored_without_class_metrics(
    image_folder, tmp_path):
  config = on_image_folder(dcgan.self_conditioned(dcgan.get_config("tiny"), num_clusters=3),
                           image_folder)
  workdir = str(tmp_path / "gan")
  train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["data_spec"]["num_classes"] == 3  # Clusters, not the folder's 2.
  assert grid_columns(config, None) is None
  report, _ = evaluate_run(workdir, EvalOptions(num_samples=12, audit_candidates=0,
                                                classifier_dir=str(tmp_path / "classifier")))
  samples = report["samples"]
  assert "class_conditional_accuracy" not in samples and samples["num_samples"] == 12
  assert 0.0 <= samples["class_entropy"] <= 1.0


def test_fine_labels_split_each_class_into_its_own_clusters():
  images, group = _blobs(per_blob=20)
  classes = (group == 2).astype(np.int32)  # Class 0 holds blobs 0 and 1, class 1 blob 2.
  fine = fine_labels(ImageData(images, classes, 2), per_class=2, log=lambda _: None)
  assert fine.num_classes == 4
  np.testing.assert_array_equal(classes_of(fine.labels, 2), classes)
  assert agreement(fine.labels[classes == 0], group[classes == 0]) == 1.0
  assert len(np.unique(fine.labels[classes == 0])) == 2


def test_draw_fine_keeps_the_class_and_follows_the_cluster_shares():
  shares = np.array([0.3, 0.1, 0.0, 0.6, 0.0, 0.0])  # Class 2 is absent from the split.
  drawn = draw_fine(np.repeat([0, 1, 2], 4000), shares, per_class=2, seed=3)
  np.testing.assert_array_equal(classes_of(drawn, 2), np.repeat([0, 1, 2], 4000))
  assert np.mean(drawn[:4000] == 0) == pytest.approx(0.75, abs=0.02)
  assert np.all(drawn[4000:8000] == 3)
  assert np.mean(drawn[8000:] == 4) == pytest.approx(0.5, abs=0.03)
  np.testing.assert_array_equal(drawn, draw_fine(np.repeat([0, 1, 2], 4000), shares, 2, 3))


def test_clusters_of_all_images_and_within_classes_do_not_mix():
  config = dcgan.get_config("tiny")
  config.data.cluster_labels, config.data.clusters_per_class = 3, 2
  images, group = _blobs()
  with pytest.raises(InvalidInputError, match="pick one"):
    training_split(config, ImageData(images, group.astype(np.int32), 3))


def test_a_gan_on_fine_labels_is_asked_for_classes(image_folder, tmp_path):
  config = on_image_folder(cgan.get_config("tiny"), image_folder)
  config.data.clusters_per_class = 2
  workdir = str(tmp_path / "cgan")
  train_and_evaluate(config, workdir)
  run = restore_run(workdir)
  assert run.spec.num_classes == 4 and class_count(run) == 2  # 2 clusters of 2 classes.
  assert grid_columns(config, run.spec) is None  # The grid cycles fine labels, not classes.
  assert set(requested_labels(run, 6, balanced=True)) == {0, 1}
  # The data prior draws classes (in their shares of the split: 16 images each), not clusters.
  assert np.bincount(requested_labels(run, 32, prior="data")).tolist() == [16, 16]
  with pytest.raises(InvalidInputError, match="classes 0..1"):
    requested_labels(run, 4, label=2)
  assert generate_images(run, 4, labels=np.array([0, 1, 1, 0])).shape == (4, 8, 8, 1)
  report, _ = evaluate_run(workdir, EvalOptions(num_samples=8, audit_candidates=4,
                                                classifier_dir=str(tmp_path / "classifier")))
  assert 0.0 <= report["samples"]["class_conditional_accuracy"] <= 1.0
  assert "discriminator" not in report["privacy_audit"]["attacks"]
  assert "nearest_sample" in report["privacy_audit"]["attacks"]
