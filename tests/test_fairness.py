"""Fairness across classes: the class_imbalance corruption, the balanced pipelines, loss
reweighting, data-prior sampling and the per-class report."""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data.corrupt import corrupt
from aigc_jax.data.images import ImageData, balanced_slots, class_weights, image_batches
from aigc_jax.data.training_split import GROUND_TRUTH_FILE, class_shares, training_split
from aigc_jax.errors import InvalidInputError
from aigc_jax.losses.gan import HINGE, NON_SATURATING, weighted_mean
from aigc_jax.metrics.class_report import imbalance_verdict, per_class_report
from aigc_jax.train import gan, vae
from aigc_jax.train.restore import labels_in_shares
from experiments.configs import cgan, vae as vae_configs
from tests.test_gan import SPEC, fake_batch


def labelled(labels, shape=(2, 2, 1)) -> ImageData:
  """Example i has every pixel equal to i (mod 256), so batches reveal their indices."""
  labels = np.asarray(labels, np.int32)
  images = np.broadcast_to((np.arange(len(labels)) % 256).astype(np.uint8)[:, None, None, None],
                           (len(labels), *shape))
  return ImageData(np.ascontiguousarray(images), labels, int(labels.max()) + 1)


def test_class_imbalance_keeps_the_share_of_the_named_classes_and_records_the_rest():
  data = labelled(np.arange(1000) % 10)
  dirty = corrupt(data, "class_imbalance=0.1:0,1,symmetric_labels=0.05", seed=3)
  # The imbalance applies first; label noise then moves some labels around.
  assert len(dirty.data.images) == 820 and len(dirty.kind) == 820
  assert len(dirty.removed) == 180
  np.testing.assert_array_equal(np.unique(data.labels[dirty.removed]), [0, 1])
  assert np.sum(np.isin(data.labels[dirty.removed], [0])) == 90
  kept = np.setdiff1d(np.arange(1000), dirty.removed)
  clean = dirty.kind == 0
  np.testing.assert_array_equal(dirty.data.images[clean], data.images[kept][clean])
  assert dirty.summary()["class_imbalance_removed"] == 180
  again = corrupt(data, "class_imbalance=0.1:0,1,symmetric_labels=0.05", seed=3)
  np.testing.assert_array_equal(again.removed, dirty.removed)
  with pytest.raises(InvalidInputError, match="class_imbalance=0.1:0,1"):
    corrupt(data, "class_imbalance=0.1", seed=0)
  with pytest.raises(InvalidInputError, match="outside 0..9"):
    corrupt(data, "class_imbalance=0.1:12", seed=0)


def test_the_training_split_saves_what_the_imbalance_removed(tmp_path):
  config = cgan.get_config("tiny")
  config.data.corrupt = "class_imbalance=0.25:1"
  data = labelled(np.arange(40) % 2)
  split = training_split(config, data, workdir=str(tmp_path), log=lambda _: None)
  assert np.bincount(split.labels).tolist() == [20, 5]
  with np.load(os.path.join(tmp_path, GROUND_TRUTH_FILE)) as saved:
    assert len(saved["removed"]) == 15 and set(data.labels[saved["removed"]]) == {1}


def test_balanced_resampling_gives_every_class_an_equal_share_and_resumes_identically():
  labels = np.array([0] * 90 + [1] * 6 + [2] * 24)  # 75 %, 5 %, 20 %.
  data = labelled(labels)
  batches = image_batches(data, global_batch=8, seed=1, balance="resample")
  epochs = [np.concatenate([next(batches)["label"] for _ in range(15)]) for _ in range(4)]
  for epoch in epochs:  # 120 slots per epoch: 40 per class, exactly.
    assert np.bincount(epoch).tolist() == [40, 40, 40]
  # The majority class moves on through its examples from epoch to epoch.
  seen = set()
  resumed_from_7 = image_batches(data, global_batch=8, seed=1, balance="resample",
                                 start_step=7)
  replay = image_batches(data, global_batch=8, seed=1, balance="resample")
  for step in range(60):
    batch = next(replay)
    seen |= set(batch["image"][:, 0, 0, 0].tolist())  # Pixels hold the example's index.
    if step >= 7 and step < 17:
      np.testing.assert_array_equal(batch["image"], next(resumed_from_7)["image"])
  assert seen == set(range(120))  # Every example shows up over four epochs.
  # The global batch does not depend on how many processes read it.
  whole = next(image_batches(data, global_batch=8, seed=1, balance="resample"))
  halves = [next(image_batches(data, global_batch=8, seed=1, balance="resample",
                               process_index=p, process_count=2)) for p in (0, 1)]
  np.testing.assert_array_equal(whole["label"], np.concatenate([h["label"] for h in halves]))
  with pytest.raises(InvalidInputError, match="data.balance"):
    image_batches(data, global_batch=8, seed=1, balance="oversample")


def test_balanced_slots_table():
  slots = balanced_slots(np.array([1, 0, 1, 1, 1]))
  assert len(slots["order"]) == 5 and sorted(slots["order"]) == list(range(5))
  # 5 slots, 3 for class 0 (one example, repeated) and 2 for class 1 (four examples).
  assert slots["stride"].tolist() == [3, 3, 3, 2, 2]
  assert slots["size"].tolist() == [1, 1, 1, 4, 4]


def test_reweighting_adds_class_weights_that_even_out_the_classes():
  labels = np.array([0] * 30 + [1] * 10)
  weights = class_weights(labels, 3)
  np.testing.assert_allclose(weights, [40 / 60, 40 / 20, 0.0])
  assert np.sum(weights[labels]) == pytest.approx(len(labels))  # Mean weight 1.
  batch = next(image_batches(labelled(labels), global_batch=8, seed=0, balance="reweight"))
  np.testing.assert_allclose(batch["weight"], weights[batch["label"]])


def test_weighted_gan_losses_scale_each_example_term():
  real, fake = jnp.array([0.5, -1.0, 2.0]), jnp.array([-0.3, 0.8, 0.1])
  weights = jnp.array([2.0, 0.5, 0.5])
  for loss in (NON_SATURATING, HINGE):
    by_hand = np.mean([float(w * loss.discriminator(r[None], f[None]))
                       for w, r, f in zip(weights, real, fake)])
    weighted = float(weighted_mean(loss.discriminator, weights, real, fake))
    assert weighted == pytest.approx(by_hand, rel=1e-6)
    assert float(weighted_mean(loss.generator, None, fake)) == float(loss.generator(fake))
    assert float(weighted_mean(loss.discriminator, jnp.ones(3), real, fake)) == pytest.approx(
        float(loss.discriminator(real, fake)), rel=1e-6)


def test_labels_in_shares_follow_the_shares_exactly():
  labels = labels_in_shares(1000, np.array([0.05, 0.05, 0.9]))
  assert np.bincount(labels).tolist() == [50, 50, 900]
  assert np.bincount(labels_in_shares(7, np.array([0.5, 0.5]))).sum() == 7
  assert not np.array_equal(labels, np.sort(labels))  # Mixed, so every batch mixes.


def test_imbalance_verdicts():
  share = np.array([0.02, 0.02] + [0.12] * 8)
  assert imbalance_verdict(share, share, 10_000)["verdict"] == "reproduces"
  assert imbalance_verdict(np.array([0.005, 0.005] + [0.1238] * 8), share,
                           10_000)["verdict"] == "amplifies"
  assert imbalance_verdict(np.full(10, 0.1), share, 10_000)["verdict"] == "reduces"
  assert imbalance_verdict(np.full(10, 0.1), np.full(10, 0.1), 100)["verdict"] == "balanced data"


def test_per_class_report_finds_the_class_a_model_serves_worst():
  rng = np.random.default_rng(0)
  centres = np.eye(3) * 10
  real_labels = np.repeat(np.arange(3), 200)
  real = centres[real_labels] + rng.normal(size=(600, 3))
  # Samples: classes 0 and 1 spread like the data; class 2 collapsed to one point.
  fake_labels = np.repeat(np.arange(3), 200)
  fake = centres[fake_labels] + rng.normal(size=(600, 3))
  fake[fake_labels == 2] = centres[2]
  probs = np.eye(3)[fake_labels]
  requested = fake_labels.copy()
  requested[:20] = 1  # 20 samples of class 0 were asked to be 1s.
  report = per_class_report(fake, probs, real, real_labels, np.array([0.1, 0.45, 0.45]),
                            requested_labels=requested)
  assert report["representation_ratio"][0] == pytest.approx((1 / 3) / 0.1)
  assert report["worst_recall_class"] == 2 and report["recall_gap"] > 0.5
  assert report["class_conditional_accuracy"][1] == pytest.approx(200 / 220)
  assert report["worst_accuracy_class"] == 1
  assert report["verdict"] == "reduces"  # Class 0 is 10 % of the data, 33 % of samples.


def test_class_shares_read_the_split_as_the_run_trained_on_it(image_folder):
  config = cgan.get_config("tiny")
  config.data.name, config.data.image_folder = "image_folder", image_folder
  config.data.corrupt = "class_imbalance=0.5:0"
  np.testing.assert_allclose(class_shares(config, log=lambda _: None), [8 / 24, 16 / 24])


@pytest.mark.parametrize("grad_accum_steps", [1, 2])
def test_a_gan_step_with_class_weights(grad_accum_steps):
  """Unit weights leave a conditional GAN's step unchanged; uneven weights change it."""
  config = cgan.get_config("tiny")
  config.grad_accum_steps = grad_accum_steps
  state = gan.create_state(config, jax.random.key(0), SPEC)
  step = jax.jit(gan.make_train_step(config, SPEC))
  batch = fake_batch()
  plain, _ = step(state, batch, jax.random.key(1))
  ones, _ = step(state, {**batch, "weight": np.ones(16, np.float32)}, jax.random.key(1))
  uneven, _ = step(state, {**batch, "weight": np.where(batch["label"] == 0, 1.8, 0.2)
                           .astype(np.float32)}, jax.random.key(1))
  chex.assert_trees_all_close(plain.d_params, ones.d_params, atol=1e-6)
  chex.assert_trees_all_close(plain.g_params, ones.g_params, atol=1e-6)
  assert not np.allclose(jax.tree.leaves(plain.d_params)[0], jax.tree.leaves(uneven.d_params)[0])


def test_a_vae_step_with_class_weights():
  config = vae_configs.get_config("tiny")
  config.model.conditional = True
  state = vae.create_state(config, jax.random.key(0), SPEC)
  step = jax.jit(vae.make_train_step(config, SPEC))
  batch = fake_batch()
  _, plain = step(state, batch, jax.random.key(1))
  _, ones = step(state, {**batch, "weight": np.ones(16, np.float32)}, jax.random.key(1))
  weights = np.where(batch["label"] == 0, 1.8, 0.2).astype(np.float32)
  _, uneven = step(state, {**batch, "weight": weights}, jax.random.key(1))
  assert float(ones["loss"]) == pytest.approx(float(plain["loss"]), rel=1e-6)
  assert float(uneven["loss"]) != pytest.approx(float(plain["loss"]), rel=1e-3)
