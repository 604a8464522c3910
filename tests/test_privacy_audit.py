"""Membership-inference attacks and the audit: known leaks are found, unseen data is chance,
and members are the ids the run saved."""

import json
import os

import numpy as np
import pytest

from aigc_jax.data.images import ImageData
from aigc_jax.data.sources import config_split
from aigc_jax.data.training_split import MEMBERS_FILE, prepared_split
from aigc_jax.metrics.membership import roc_auc, roc_curve
from aigc_jax.metrics.membership_attacks import line_windows, nearest_sample_scores, neg_elbo_scores
from aigc_jax.metrics.privacy_audit import (AuditOptions, audit_run, image_candidates,
                                            save_roc_figure)
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.restore import restore_run
from experiments.configs import vae
from tests.conftest import write_image_folder


def _random_images(n: int, seed: int, num_classes: int = 2) -> ImageData:
  rng = np.random.default_rng(seed)
  return ImageData(rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8),
                   (np.arange(n) % num_classes).astype(np.int32), num_classes)


def test_roc_curve_runs_from_origin_to_corner_and_matches_the_auc():
  rng = np.random.default_rng(0)
  members, others = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 200)
  fpr, tpr = roc_curve(members, others)
  assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
  assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
  assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(members, others))
  fpr, tpr = roc_curve(np.array([1.0, 1.0]), np.array([1.0]))  # One tie: one step.
  assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]


def test_nearest_sample_finds_copied_training_images_and_not_unseen_ones():
  members, others = _random_images(200, seed=1), _random_images(200, seed=2)
  memorised = np.concatenate([members.images, _random_images(300, seed=3).images]) / 255.0
  labels = np.concatenate([members.labels, np.arange(300) % 2]).astype(np.int32)
  leak = roc_auc(nearest_sample_scores(members, memorised, labels),
                 nearest_sample_scores(others, memorised, labels))
  assert leak == 1.0  # Every member is at distance 0 from its copy.
  unrelated = _random_images(500, seed=4).images / 255.0
  chance = roc_auc(nearest_sample_scores(members, unrelated),
                   nearest_sample_scores(others, unrelated))
  assert abs(chance - 0.5) < 0.1


def test_line_windows_mask_the_lines_own_characters():
  encode = lambda text: np.array([ord(c) for c in text], np.int32)
  tokens, mask = line_windows(["ab", "abcdefgh"], encode, block_size=4)
  assert tokens[0].tolist() == [10, 97, 98, 0, 0]  # "\nab", padded.
  assert mask[0].tolist() == [1, 1, 0, 0]  # Targets "a", "b".
  assert tokens[1].tolist() == [10, 97, 98, 99, 100] and mask[1].tolist() == [1, 1, 1, 1]


@pytest.fixture(scope="module")
def memorising_vae(tmp_path_factory):
  """A VAE trained long on 24 of 128 random-pixel images: the leak is certain."""
  root = write_image_folder(str(tmp_path_factory.mktemp("noise")), per_class=64,
                            shape=(6, 6, 1), seed=5)
  config = vae.get_config("tiny")
  config.data.name, config.data.image_folder = "image_folder", root
  config.data.eval_split = config.data.test_split = "train"
  config.data.subset, config.data.subset_seed = 24, 1
  config.model.hidden, config.model.latent_dim = (256,), 8
  config.batch_size, config.num_steps, config.steps_per_call = 8, 600, 50
  config.optimizer.learning_rate = 3e-3
  config.eval_every = config.sample_every = config.checkpoint_every = 0
  workdir = str(tmp_path_factory.mktemp("vae_run"))
  train_and_evaluate(config, workdir)
  return workdir, config


def test_audit_of_a_memorising_vae_attacks_its_saved_members(memorising_vae):
  workdir, config = memorising_vae
  run = restore_run(workdir)
  options = AuditOptions(num_candidates=24, num_samples=200, bootstrap=50)
  members, others, described = image_candidates(run, workdir, options)
  pool = prepared_split(config, config_split(config, "train"), log=lambda _: None)
  saved = np.load(os.path.join(workdir, MEMBERS_FILE))
  np.testing.assert_array_equal(members.images, pool.images[saved])
  assert not {x.tobytes() for x in members.images} & {x.tobytes() for x in others.images}
  assert "subset of 24" in described["members"] and "104 items" in described["nonmembers"]
  audit = audit_run(run, workdir, options)
  assert audit["attacks"]["neg_elbo"]["roc_auc"] > 0.8  # Chance: 0.5, standard error 0.08.
  assert set(audit["attacks"]) == {"neg_elbo", "nearest_sample"}
  json.dumps(audit)  # What experiments.audit_privacy writes.
  figure = os.path.join(workdir, "roc.png")
  save_roc_figure({"a": audit, "b": audit}, figure)  # Two panels, as the study draws them.
  assert os.path.getsize(figure) > 0


def test_examples_the_vae_never_saw_score_at_chance(memorising_vae):
  workdir, config = memorising_vae
  run = restore_run(workdir)
  pool = prepared_split(config, config_split(config, "train"), log=lambda _: None)
  unseen = np.setdiff1d(np.arange(len(pool.images)), np.load(os.path.join(workdir,
                                                                          MEMBERS_FILE)))
  half = len(unseen) // 2
  pick = lambda ids: ImageData(pool.images[ids], pool.labels[ids], pool.num_classes)
  auc = roc_auc(neg_elbo_scores(run, pick(unseen[:half])),
                neg_elbo_scores(run, pick(unseen[half:])))
  assert abs(auc - 0.5) < 0.2  # 52 against 52: the AUC's standard error is about 0.06.
