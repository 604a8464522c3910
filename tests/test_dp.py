"""Private training: the DP-SGD gradient against numpy, Poisson batches, the accountant
against dp-accounting, and private runs of every family."""

import dataclasses
import json

import dp_accounting
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from dp_accounting.pld import pld_privacy_accountant

from aigc_jax.data.batching import poisson_batch
from aigc_jax.errors import InvalidInputError
from aigc_jax.train import dp
from aigc_jax.train.batch_axis import AXIS
from aigc_jax.train.loop import train_and_evaluate
from experiments.configs import cgan, vae

CLIP, SIGMA, EXPECTED = 1.5, 0.7, 6


def _linear_loss(params, examples, index):
  """Mean squared error of a linear model: per-example gradients are known in closed form."""
  del index
  residual = examples["x"] @ params["w"] + params["b"] - examples["y"]
  return jnp.mean(residual ** 2), {"residual": jnp.mean(residual)}


def _problem(n=8, d=3, seed=0):
  rng = np.random.default_rng(seed)
  params = {"w": rng.normal(size=(d,)).astype(np.float32), "b": np.float32(0.3)}
  examples = {"x": rng.normal(size=(n, d)).astype(np.float32) * 3,
              "y": rng.normal(size=(n,)).astype(np.float32)}
  mask = np.array([1, 1, 0, 1, 1, 1, 0, 1], np.float32)
  return params, examples, mask


def _numpy_private_gradient(params, examples, mask, noise):
  """Clip each kept example's gradient to CLIP, sum, add noise * SIGMA * CLIP, / EXPECTED."""
  residual = examples["x"] @ params["w"] + params["b"] - examples["y"]
  per_example = np.concatenate([2 * residual[:, None] * examples["x"],
                                2 * residual[:, None]], axis=1)  # (n, d + 1): w, then b.
  norms = np.linalg.norm(per_example, axis=1)
  clipped = per_example * np.minimum(1.0, CLIP / norms)[:, None] * mask[:, None]
  total = clipped.sum(0) + SIGMA * CLIP * noise
  return total / EXPECTED, np.sum(mask * (norms > CLIP)) / mask.sum()


def _noise_of(rng, params):
  """The standard-normal draws private_gradient makes for `params` from `rng`."""
  leaves, _ = jax.tree.flatten(params)
  keys = jax.random.split(rng, len(leaves))
  return {name: np.asarray(jax.random.normal(k, np.shape(p)))
          for name, k, p in zip(("b", "w"), keys, leaves)}  # Flatten order: sorted keys.


@pytest.mark.parametrize("microbatches", [1, 2])
def test_private_gradient_clips_per_example_and_adds_the_stated_noise(microbatches):
  params, examples, mask = _problem()
  rng = jax.random.key(3)
  step = jax.jit(lambda p, e, m, r: dp.private_gradient(
      _linear_loss, p, e, m, r, l2_clip=CLIP, noise_multiplier=SIGMA, expected_batch=EXPECTED,
      microbatches=microbatches))
  (loss, aux), grads, clipped_share = step(params, examples, mask, rng)
  noise = _noise_of(rng, params)
  expected, share = _numpy_private_gradient(params, examples, mask,
                                            np.append(noise["w"], noise["b"]))
  np.testing.assert_allclose(np.append(grads["w"], grads["b"]), expected, rtol=1e-5, atol=1e-6)
  assert float(clipped_share) == pytest.approx(share)
  residual = examples["x"] @ params["w"] + params["b"] - examples["y"]
  assert float(loss) == pytest.approx(np.sum(mask * residual ** 2) / mask.sum(), rel=1e-5)
  assert float(aux["residual"]) == pytest.approx(np.sum(mask * residual) / mask.sum(), rel=1e-5)


def test_clipped_sums_match_jax_privacy():
  """jax-privacy's clipped_grad, the field's maintained implementation, as the reference
  (dp.py keeps its own: 2-3x faster on CPU; docs/privacy.md)."""
  from jax_privacy import clipping
  params, examples, mask = _problem(seed=4)
  ours = dp.private_gradient(_linear_loss, params, examples, mask, jax.random.key(0),
                             l2_clip=CLIP, noise_multiplier=0.0, expected_batch=1,
                             microbatches=2)[1]
  theirs = clipping.clipped_grad(lambda p, e: _linear_loss(p, e, 0), has_aux=True,
                                 l2_clip_norm=CLIP)(params, examples,
                                                    is_padding_example=mask == 0)[0]
  for name in ("w", "b"):
    np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6)


def test_private_noise_has_the_stated_scale():
  params = {"w": jnp.zeros((20_000,))}
  loss = lambda p, e, i: (jnp.mean(e @ p["w"]), ())
  _, grads, _ = dp.private_gradient(loss, params, jnp.zeros((4, 20_000)), jnp.ones(4),
                                    jax.random.key(0), l2_clip=CLIP, noise_multiplier=SIGMA,
                                    expected_batch=EXPECTED)
  scaled = np.asarray(grads["w"]) * EXPECTED / (SIGMA * CLIP)  # Zero gradients: noise only.
  assert abs(scaled.mean()) < 0.03 and scaled.std() == pytest.approx(1.0, abs=0.02)


def test_clipping_is_per_example_across_devices_and_under_pmap():
  """Sharded over 4 devices, and with pmap's per-device slices, each example is clipped
  on its own: the same gradient as on one device."""
  params, examples, mask = _problem()
  rng = jax.random.key(5)
  kwargs = dict(l2_clip=CLIP, noise_multiplier=SIGMA, expected_batch=EXPECTED)
  one_device = dp.private_gradient(_linear_loss, params, examples, mask, rng, **kwargs)[1]
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), ("batch",))
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
  sharded = jax.jit(lambda e, m: dp.private_gradient(_linear_loss, params, e, m, rng,
                                                     **kwargs)[1])(
      jax.device_put(examples, rows), jax.device_put(mask, rows))
  per_device = lambda x: x.reshape(4, -1, *x.shape[1:])
  pmapped = jax.pmap(lambda e, m: dp.private_gradient(_linear_loss, params, e, m, rng,
                                                      axis=AXIS, **kwargs)[1],
                     axis_name=AXIS, devices=jax.devices()[:4])(
      jax.tree.map(per_device, examples), per_device(mask))
  for name in ("w", "b"):
    np.testing.assert_allclose(sharded[name], one_device[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pmapped[name][0], one_device[name], rtol=1e-5, atol=1e-6)


def _poisson(step, **kwargs):
  ids, mask = poisson_batch(tf.constant(step, tf.int64), **kwargs)
  return ids.numpy(), mask.numpy()


def test_poisson_batches_include_each_item_at_the_rate_and_are_pure_in_seed_and_step():
  settings = dict(num_items=200, rate=0.05, capacity=40, seed=1, process_index=0,
                  process_count=1)
  seen = np.zeros(200)
  sizes = []
  for step in range(400):
    ids, mask = _poisson(step, **settings)
    kept = ids[mask > 0]
    assert len(set(kept)) == len(kept) and np.all(ids[mask == 0] == 0)
    seen[kept] += 1
    sizes.append(len(kept))
  assert np.mean(sizes) == pytest.approx(10, abs=0.5)  # q N = 10.
  assert np.var(sizes) == pytest.approx(200 * 0.05 * 0.95, rel=0.25)  # Binomial, not fixed.
  assert seen.mean() / 400 == pytest.approx(0.05, rel=0.05)
  np.testing.assert_array_equal(_poisson(7, **settings)[0], _poisson(7, **settings)[0])
  halves = [_poisson(7, **{**settings, "process_index": i, "process_count": 2})[0]
            for i in (0, 1)]
  np.testing.assert_array_equal(np.concatenate(halves), _poisson(7, **settings)[0])


def test_poisson_batches_truncate_to_a_random_subset_of_the_capacity():
  ids, mask = _poisson(0, num_items=100, rate=0.9, capacity=16, seed=0, process_index=0,
                       process_count=1)
  assert mask.sum() == 16 and len(set(ids)) == 16
  others = _poisson(1, num_items=100, rate=0.9, capacity=16, seed=0, process_index=0,
                    process_count=1)[0]
  assert set(ids) != set(others)  # Not always the lowest ids.


def _plan(**changes):
  plan = dp.DpPlan(num_items=60_000, sampling_rate=256 / 60_000,
                   capacity=dp.batch_capacity(256, 8),
                   noise_multiplier=1.0, l2_clip=1.0, delta=1e-5, num_steps=1000)
  return dataclasses.replace(plan, **changes)


def test_epsilon_is_dp_accountings_for_the_truncated_poisson_gaussian():
  plan = _plan()
  accountant = pld_privacy_accountant.PLDAccountant()
  accountant.compose(dp_accounting.SelfComposedDpEvent(
      dp_accounting.TruncatedSubsampledGaussianDpEvent(60_000, 256 / 60_000, 336, 1.0), 1000))
  assert dp.epsilon_spent(plan, 1000) == pytest.approx(accountant.get_epsilon(1e-5))
  assert dp.epsilon_spent(plan, 0) == 0.0
  assert dp.epsilon_spent(plan, 100) < dp.epsilon_spent(plan, 1000)
  # A capacity five standard deviations up costs (almost) nothing over plain Poisson.
  poisson = pld_privacy_accountant.PLDAccountant()
  poisson.compose(dp_accounting.SelfComposedDpEvent(
      dp_accounting.PoissonSampledDpEvent(256 / 60_000, dp_accounting.GaussianDpEvent(1.0)),
      1000))
  assert dp.epsilon_spent(plan, 1000) == pytest.approx(poisson.get_epsilon(1e-5), rel=0.05)


def test_calibrated_noise_spends_the_target_epsilon():
  plan = _plan(num_items=10_000, sampling_rate=0.01, capacity=160, num_steps=200)
  sigma = dp.calibrate_noise(plan, 0.5)  # Much noise: the accountant is quick there.
  spent = dp.epsilon_spent(dataclasses.replace(plan, noise_multiplier=sigma), 200)
  assert 0.49 < spent <= 0.5


def test_capacity_splits_evenly_and_sits_five_deviations_up():
  assert dp.batch_capacity(256, 8) == 336  # 256 + 5 * 16 = 336, a multiple of 8.
  assert dp.batch_capacity(100, 4) == 152  # 150, rounded up to a multiple of 4.


def _image_config(module_config, image_folder):
  config = module_config
  config.data.name, config.data.image_folder = "image_folder", image_folder
  config.data.eval_split = config.data.test_split = "train"
  config.batch_size, config.grad_accum_steps = 4, 2
  config.dp.noise_multiplier = 1.0
  return config


def test_a_private_vae_run_logs_the_epsilon_it_spent(image_folder, tmp_path):
  config = _image_config(vae.get_config("tiny"), image_folder)
  config.checkpoint_every = 2
  scalars = train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / "metrics.jsonl") as f:
    logged = [json.loads(line) for line in f if "privacy/epsilon" in line]
  assert [m["step"] for m in logged] == [2, 4]
  capacity = dp.batch_capacity(4, 4 * 2)  # A multiple of 4 test devices x 2 microbatches.
  plan = dp.DpPlan(num_items=32, sampling_rate=4 / 32, capacity=capacity,
                   noise_multiplier=1.0, l2_clip=1.0, delta=1e-5, num_steps=4)
  assert logged[-1]["privacy/epsilon"] == pytest.approx(dp.epsilon_spent(plan, 4))
  assert logged[0]["privacy/epsilon"] < logged[-1]["privacy/epsilon"]
  assert 0.0 <= scalars["clipped_share"] <= 1.0
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["config"]["dp"]["noise_multiplier"] == 1.0


def test_a_private_gan_trains_d_privately_and_refuses_batchnorm_in_d(image_folder, tmp_path):
  config = _image_config(cgan.get_config("tiny"), image_folder)
  config.model.d_norm = "batch"
  with pytest.raises(InvalidInputError, match="d_norm='batch'"):
    train_and_evaluate(config, str(tmp_path / "bn"))
  config.model.d_norm = "spectral"
  scalars = train_and_evaluate(config, str(tmp_path / "sn"))
  assert 0.0 <= scalars["d_clipped_share"] <= 1.0 and scalars["privacy/epsilon"] > 0
  config.dp.epsilon = 3.0
  with pytest.raises(InvalidInputError, match="not both"):
    train_and_evaluate(config, str(tmp_path / "both"))
