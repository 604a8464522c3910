"""Self-conditioning: k-means clusters of the images as the labels a GAN trains on."""

import json
import os

import numpy as np
import pytest

from aigc_jax.data.clusters import agreement, kmeans_clusters
from aigc_jax.data.images import ImageData
from aigc_jax.data.training_split import class_shares, training_split
from aigc_jax.errors import InvalidInputError
from aigc_jax.metrics.run_evaluation import EvalOptions, evaluate_run
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.sample_output import grid_columns
from experiments.configs import dcgan, vae


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
  with pytest.raises(InvalidInputError, match="more clusters than there are images"):
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
  config = dcgan.self_conditioned(dcgan.get_config("tiny"), num_clusters=3)
  config.data.name, config.data.image_folder = "image_folder", image_folder
  config.data.eval_split = config.data.test_split = "train"
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
