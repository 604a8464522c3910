"""VAE family: objective terms against closed forms, IWAE behaviour, a step per variant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data.images import ImageData, ImageSpec
from aigc_jax.losses.vae import (bernoulli_log_prob, diagonal_gaussian_log_density,
                                 discretized_gaussian_log_prob, dynamic_binarize, gaussian_kl,
                                 neg_elbo)
from aigc_jax.metrics.likelihood import iwae_log_likelihood
from aigc_jax.metrics.vae_report import evaluate_vae, save_vae_figures
from aigc_jax.metrics.vae_scores import per_example_neg_elbo
from aigc_jax.train import vae
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.metric_writer import read_metrics
from aigc_jax.train.restore import restore_run
from experiments.configs import vae as vae_configs


def test_kl_matches_the_closed_form_by_hand_and_monte_carlo():
  mean, logvar = jnp.array([[1.0, -2.0]]), jnp.array([[0.0, np.log(4.0)]])
  by_hand = 0.5 * ((1 + 1 - 1 - 0) + (4 + 4 - 1 - np.log(4)))
  np.testing.assert_allclose(gaussian_kl(mean, logvar), [by_hand], rtol=1e-6)
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.key(0), (200_000, 2))
  monte_carlo = jnp.mean(diagonal_gaussian_log_density(z, mean, logvar)
                         - diagonal_gaussian_log_density(z, 0.0, jnp.zeros(2)))
  np.testing.assert_allclose(monte_carlo, by_hand, rtol=0.02)


def test_kl_to_a_class_prior_matches_monte_carlo_and_is_zero_at_the_prior():
  mean, logvar = jnp.array([[1.0, -2.0]]), jnp.array([[0.0, np.log(4.0)]])
  prior_mean, prior_logvar = jnp.array([[0.5, 1.0]]), jnp.array([[np.log(2.0), -1.0]])
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.key(0), (200_000, 2))
  monte_carlo = jnp.mean(diagonal_gaussian_log_density(z, mean, logvar)
                         - diagonal_gaussian_log_density(z, prior_mean, prior_logvar))
  np.testing.assert_allclose(gaussian_kl(mean, logvar, prior_mean, prior_logvar),
                             [monte_carlo], rtol=0.02)
  np.testing.assert_allclose(gaussian_kl(prior_mean, prior_logvar, prior_mean, prior_logvar),
                             [0.0], atol=1e-6)


def test_gaussian_log_density_matches_the_formula():
  z, mean, logvar = jnp.array([[0.5, -1.0]]), jnp.array([[0.0, 1.0]]), jnp.array([[0.0, 1.0]])
  var = np.exp([0.0, 1.0])
  expected = np.sum(-0.5 * np.log(2 * np.pi * var) - (np.array([0.5, -1.0]) - [0, 1]) ** 2
                    / (2 * var))
  np.testing.assert_allclose(diagonal_gaussian_log_density(z, mean, logvar), [expected],
                             rtol=1e-6)


def test_bernoulli_log_prob_by_hand():
  logits = jnp.array([[[[0.0], [2.0]]]])  # (1, 1, 2, 1)
  images = jnp.array([[[[-1.0], [1.0]]]])  # pixels off, on
  expected = np.log(1 - 0.5) + np.log(1 / (1 + np.exp(-2.0)))
  np.testing.assert_allclose(bernoulli_log_prob(logits, images), [expected], rtol=1e-6)


def test_discretized_gaussian_is_a_distribution_over_256_values():
  values = jnp.arange(256, dtype=jnp.float32) / 127.5 - 1.0
  for mean, log_scale in ((0.1, -2.0), (-0.95, -4.0), (0.5, 0.5)):
    params = jnp.broadcast_to(jnp.array([mean, log_scale]), (256, 1, 1, 2))
    log_p = discretized_gaussian_log_prob(params, values.reshape((256, 1, 1, 1)))
    np.testing.assert_allclose(jax.scipy.special.logsumexp(log_p), 0.0, atol=1e-4)


def test_dynamic_binarization_samples_intensity():
  images = jnp.full((20_000, 1, 1, 1), 0.5)  # intensity 0.75
  binary = dynamic_binarize(jax.random.key(0), images)
  assert set(np.unique(binary)) == {-1.0, 1.0}
  np.testing.assert_allclose(np.mean(binary == 1.0), 0.75, atol=0.01)


def tiny(variant="tiny", **changes):
  config = vae_configs.get_config(variant)
  common = dict(latent_dim=4, hidden=(16,), channels=(4, 8), dense=16)
  config.model.update({k: v for k, v in common.items() if k in config.model})
  config.update(changes.pop("top", {}))
  config.model.update(changes)
  return config


VARIANTS = {
    "mlp": (tiny(), (8, 8, 1)),
    "conv": (tiny(arch="conv"), (8, 8, 1)),
    "cvae_mlp": (tiny(conditional=True), (8, 8, 1)),
    "cvae_conv": (tiny(arch="conv", conditional=True), (8, 8, 1)),
    "cvae_mlp_class_prior": (tiny(conditional=True, class_prior=True), (8, 8, 1)),
    "conv_rgb_discretized": (tiny(arch="conv", top={"likelihood": "discretized_gaussian"}),
                             (8, 8, 3)),
    "binarized": (tiny(top={"binarize": True}), (8, 8, 1)),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_one_train_step_per_variant(name):
  config, shape = VARIANTS[name]
  spec = ImageSpec(shape, 3)
  state = vae.create_state(config, jax.random.key(0), spec)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 256, (6, *shape)) / 127.5 - 1, jnp.float32),
           "label": jnp.asarray(rng.integers(0, 3, 6), jnp.int32)}
  new, metrics = jax.jit(vae.make_train_step(config, spec))(state, batch, jax.random.key(1))
  assert int(new.step) == 1
  assert all(np.isfinite(float(v)) for v in metrics.values())
  np.testing.assert_allclose(metrics["neg_elbo"], metrics["recon"] + metrics["kl"], rtol=1e-5)
  moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(state.params),
                                                 jax.tree.leaves(new.params))]
  assert all(moved)
  samples = vae.make_sampler(config, spec)(new, jax.random.key(2), 5)
  assert samples.shape == (5, *shape) and float(jnp.abs(samples).max()) <= 1.0


def test_kl_warmup_ramps_beta():
  config, shape = VARIANTS["mlp"]
  config.kl_warmup_steps, config.beta = 4, 2.0
  spec = ImageSpec(shape, 3)
  state = vae.create_state(config, jax.random.key(0), spec)
  step = jax.jit(vae.make_train_step(config, spec))
  batch = {"image": jnp.zeros((4, *shape)), "label": jnp.zeros((4,), jnp.int32)}
  betas = []
  for _ in range(5):
    state, metrics = step(state, batch, jax.random.key(0))
    betas.append(float(metrics["beta"]))
  np.testing.assert_allclose(betas, [0.5, 1.0, 1.5, 2.0, 2.0])


def test_iwae_bound_is_above_the_elbo_and_tightens_with_k():
  config, shape = VARIANTS["mlp"]
  spec = ImageSpec(shape, 3)
  model = vae.build_model(config, spec)
  state = vae.create_state(config, jax.random.key(0), spec)
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (64, *shape)), jnp.float32)
  eps = jax.random.normal(jax.random.key(1), (64, config.model.latent_dim))
  elbo_mean = -float(jnp.mean(neg_elbo(model, state.params, images, None, eps, "bernoulli")))
  bounds = [float(jnp.mean(iwae_log_likelihood(model, state.params, images, None,
                                               jax.random.key(2), "bernoulli", k, 50)))
            for k in (1, 10, 200)]
  assert abs(bounds[0] - elbo_mean) < 0.05 * abs(elbo_mean)  # k = 1 estimates the ELBO.
  assert elbo_mean < bounds[1] < bounds[2]


def test_vae_run_logs_held_out_elbo_and_evaluates(image_folder, tmp_path):
  config = tiny()
  config.data.name, config.data.image_folder = "image_folder", image_folder
  config.data.eval_split = "train"  # The fake folder has one split.
  train_and_evaluate(config, str(tmp_path))
  logged = [m for m in read_metrics(str(tmp_path)) if "eval/neg_elbo" in m]
  assert [m["step"] for m in logged] == [2, 4]
  run = restore_run(str(tmp_path))
  data = ImageData(np.zeros((10, 8, 8, 1), np.uint8) + 30, np.zeros(10, np.int32), 2)
  report = evaluate_vae(run, data, iwae_k=20, batch_size=4)
  assert report["num_examples"] == 10  # Padding in the last batch is not counted.
  assert report["iwae_nll_nats"] <= report["neg_elbo_nats"] + 1.0
  assert report["recon_ssim"] <= 1.0 and np.isfinite(report["recon_psnr_db"])
  scores = per_example_neg_elbo(run, data, batch_size=4)  # The outlier score.
  assert scores.shape == (10,) and np.all(np.isfinite(scores)) and np.all(scores > 0)
  np.testing.assert_array_equal(scores, per_example_neg_elbo(run, data, batch_size=4))
  # The ten images are equal, so their scores differ only by the posterior draws, and an
  # average over 16 draws spreads about a quarter as much.
  averaged = per_example_neg_elbo(run, data, batch_size=4, draws=16)
  assert np.std(averaged) < 0.5 * np.std(scores)
  assert abs(np.mean(averaged) - np.mean(scores)) < 3 * np.std(scores) / np.sqrt(10)
  with pytest.raises(ValueError, match="train a VAE on this dataset"):
    per_example_neg_elbo(run, ImageData(np.zeros((4, 4, 4, 1), np.uint8), np.zeros(4, np.int32), 2))
  paths = save_vae_figures(run, ImageData(np.zeros((32, 8, 8, 1), np.uint8),
                                          np.zeros(32, np.int32), 2), str(tmp_path / "eval"))
  assert len(paths) == 3


def test_class_prior_starts_at_the_standard_normal_and_sampling_draws_from_it():
  config, shape = VARIANTS["cvae_mlp_class_prior"]
  spec = ImageSpec(shape, 3)
  model = vae.build_model(config, spec)
  state = vae.create_state(config, jax.random.key(0), spec)
  plain = vae.build_model(VARIANTS["cvae_mlp"][0], spec)
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, *shape)), jnp.float32)
  labels = jnp.arange(8) % 3
  eps = jax.random.normal(jax.random.key(1), (8, config.model.latent_dim))
  shared = {k: v for k, v in state.params.items() if k != "class_prior"}
  # Untrained, p(z|y) = N(0, I): the ELBO is the plain CVAE's with the same weights.
  np.testing.assert_allclose(neg_elbo(model, state.params, images, labels, eps, "bernoulli"),
                             neg_elbo(plain, shared, images, labels, eps, "bernoulli"),
                             rtol=1e-6)
  # Move class 2's prior far away: its samples are decoded from there, the others are not.
  params = jax.tree_util.tree_map(lambda x: x, state.params)
  params["class_prior"]["mean"]["embedding"] = (
      params["class_prior"]["mean"]["embedding"].at[2].set(50.0))
  z = model.apply({"params": params}, labels, eps, method=model.sample_prior)
  np.testing.assert_allclose(z[labels == 2], eps[labels == 2] + 50.0, rtol=1e-6)
  np.testing.assert_allclose(z[labels != 2], eps[labels != 2], rtol=1e-6)
  # IWAE uses the same prior: k = 1 still estimates the ELBO under it.
  elbo = -float(jnp.mean(neg_elbo(model, params, images, labels, eps, "bernoulli")))
  iwae = [float(jnp.mean(iwae_log_likelihood(model, params, images, labels,
                                             jax.random.key(2), "bernoulli", k, 50)))
          for k in (1, 200)]
  assert abs(iwae[0] - elbo) < 0.05 * abs(elbo) and elbo < iwae[1]
