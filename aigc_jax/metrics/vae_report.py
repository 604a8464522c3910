"""Test-set report for a trained VAE: -ELBO, IWAE NLL, reconstruction quality, figures."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.data.image_grid import make_grid, save_png, to_unit_range
from aigc_jax.data.images import ImageData
from aigc_jax.losses.vae import dynamic_binarize, get_likelihood, neg_elbo
from aigc_jax.metrics.image_similarity import psnr, ssim
from aigc_jax.metrics.likelihood import iwae_log_likelihood
from aigc_jax.models.vae import VAE
from aigc_jax.train import sharding
from aigc_jax.train.evaluation import make_split_evaluator
from aigc_jax.train.restore import RestoredRun


def protocol(config) -> str:
  if config.binarize:
    return ("dynamically binarised pixels in training; test set binarised once with a "
            "fixed key (the published MNIST NLL protocol)")
  if config.likelihood == "bernoulli":
    return "grey pixels under a Bernoulli decoder (continuous BCE; not a normalised NLL)"
  return f"8-bit pixels under the {config.likelihood} likelihood (a discrete NLL)"


def evaluate_vae(run: RestoredRun, data: ImageData, *, iwae_k: int, batch_size: int = 100,
                 seed: int = 0) -> dict:
  """Per-example means over `data`; each batch i uses key fold_in(seed, i)."""
  config = run.config
  model = run.model
  mean_image = get_likelihood(config.likelihood).mean

  def batch_sums(state, batch, rng):
    params = state.params
    binarize_rng, elbo_rng, iwae_rng = jax.random.split(rng, 3)
    images = batch["image"]
    if config.binarize:
      images = dynamic_binarize(binarize_rng, images)
    labels = batch["label"] if config.model.conditional else None
    eps = jax.random.normal(elbo_rng, (images.shape[0], config.model.latent_dim))
    nll = -iwae_log_likelihood(model, params, images, labels, iwae_rng, config.likelihood,
                               iwae_k)
    z, _ = model.apply({"params": params}, images, labels, method=VAE.encode)
    recon = (mean_image(model.apply({"params": params}, z, labels, method=VAE.decode))
             + 1) / 2
    target = (images + 1) / 2
    mask = batch["mask"]
    per_example = {"neg_elbo": neg_elbo(model, params, images, labels, eps,
                                        config.likelihood),
                   "iwae_nll": nll, "psnr": psnr(target, recon), "ssim": ssim(target, recon)}
    sums = {k: jnp.sum(v * mask) for k, v in per_example.items()}
    return {**sums, "count": jnp.sum(mask)}

  evaluate = make_split_evaluator(batch_sums, data, batch_size=batch_size,
                                  mesh=sharding.make_mesh(), rng=jax.random.key(seed))
  means = evaluate(run.state)
  dims = float(np.prod(run.spec.image_shape))
  return {
      "family": "vae", "step": run.step, "protocol": protocol(config),
      "num_examples": len(data.images), "iwae_k": iwae_k,
      "neg_elbo_nats": means["neg_elbo"], "iwae_nll_nats": means["iwae_nll"],
      "iwae_bits_per_dim": means["iwae_nll"] / (dims * np.log(2)),
      "recon_psnr_db": means["psnr"], "recon_ssim": means["ssim"],
  }


def save_vae_figures(run: RestoredRun, data: ImageData, out_dir: str, seed: int = 0,
                     ) -> list[str]:
  """Reconstructions, prior samples and latent interpolations as PNG grids."""
  config = run.config
  model = run.model
  mean_image = get_likelihood(config.likelihood).mean
  params = run.state.params
  conditional = config.model.conditional
  images = jnp.asarray(data.images[:32], jnp.float32) / 127.5 - 1.0
  labels = jnp.asarray(data.labels[:32]) if conditional else None

  def decode(z, y):
    return mean_image(model.apply({"params": params}, z, y, method=VAE.decode))

  z, _ = model.apply({"params": params}, images, labels, method=VAE.encode)
  recon = decode(z, labels)
  pairs = jnp.stack([images, recon], axis=1).reshape((-1, *images.shape[1:]))  # orig, recon
  samples = run.family.make_sampler(config, run.spec)(run.state, jax.random.key(seed), 64)
  steps = jnp.linspace(0.0, 1.0, 10)[:, None]
  rows = []
  for i in range(0, 16, 2):  # 8 rows: z of image i to z of image i+1.
    path = z[i] * (1 - steps) + z[i + 1] * steps  # (10, latent)
    rows.append(decode(path, None if labels is None else jnp.full((10,), labels[i])))
  os.makedirs(out_dir, exist_ok=True)
  figures = {"reconstructions": make_grid(to_unit_range(np.asarray(pairs)), columns=16),
             "prior_samples": make_grid(to_unit_range(np.asarray(samples))),
             "interpolations": make_grid(to_unit_range(np.asarray(jnp.concatenate(rows))),
                                         columns=10)}
  paths = []
  for name, grid in figures.items():
    paths.append(os.path.join(out_dir, f"step_{run.step}_{name}.png"))
    save_png(paths[-1], grid)
  return paths
