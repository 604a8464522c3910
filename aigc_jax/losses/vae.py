"""The VAE objective: likelihoods p(x|z) registered by name, the closed-form KL, the ELBO.

All functions return one value per example (shape (B,), nats), so the same code gives the
training loss (a mean), evaluation sums (masked), and per-example outlier scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtr

from aigc_jax.errors import InvalidInputError

LOG_2PI = jnp.log(2 * jnp.pi)


class Likelihood(NamedTuple):
  """A decoder output model. Images are in [-1, 1] throughout."""

  params_per_channel: int  # Decoder outputs this many maps per image channel.
  log_prob: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]  # (params, x) -> (B,)
  mean: Callable[[jnp.ndarray], jnp.ndarray]  # params -> E[x | z], in [-1, 1]


def _sum_per_example(x: jnp.ndarray) -> jnp.ndarray:
  return jnp.sum(x.reshape((x.shape[0], -1)), axis=-1)


def bernoulli_log_prob(logits: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
  """sum_i t_i log s(l_i) + (1 - t_i) log(1 - s(l_i)) with t = (x + 1) / 2.

  For binary pixels this is log p(x|z). For grey pixels it is minus the "continuous BCE"
  most VAE code reports -- a training signal, not a normalised likelihood.
  """
  targets = (images + 1.0) / 2.0
  return _sum_per_example(targets * logits - jax.nn.softplus(logits))


def discretized_gaussian_log_prob(params: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
  """log P(x|z) of 8-bit pixels: Gaussian mass over each pixel's bin of width 2/255.

  `params` holds per-pixel means and log-scales stacked on the channel axis. The edge
  bins extend to -inf / +inf, so the 256 bins sum to 1 and the result is a true discrete
  likelihood, comparable to published bits/dim.
  """
  mean, log_scale = jnp.split(params, 2, axis=-1)
  inv_scale = jnp.exp(-jnp.clip(log_scale, -7.0, 7.0))
  half_bin = 1.0 / 255.0
  upper = (images + half_bin - mean) * inv_scale
  lower = (images - half_bin - mean) * inv_scale
  mass = jnp.maximum(ndtr(upper) - ndtr(lower), 1e-12)
  log_mass = jnp.where(images < -0.999, log_ndtr(upper),
                       jnp.where(images > 0.999, log_ndtr(-lower), jnp.log(mass)))
  return _sum_per_example(log_mass)


LIKELIHOODS: dict[str, Likelihood] = {
    "bernoulli": Likelihood(1, bernoulli_log_prob, lambda logits: 2 * jax.nn.sigmoid(logits) - 1),
    "discretized_gaussian": Likelihood(
        2, discretized_gaussian_log_prob,
        lambda params: jnp.clip(jnp.split(params, 2, axis=-1)[0], -1.0, 1.0)),
}


def get_likelihood(name: str) -> Likelihood:
  try:
    return LIKELIHOODS[name]
  except KeyError:
    raise InvalidInputError(f"Unknown likelihood '{name}'; available: "
                            f"{sorted(LIKELIHOODS)}.") from None


def gaussian_kl(mean: jnp.ndarray, logvar: jnp.ndarray, prior_mean: jnp.ndarray | float = 0.0,
                prior_logvar: jnp.ndarray | float = 0.0) -> jnp.ndarray:
  """KL(N(mean, exp(logvar)) || N(prior_mean, exp(prior_logvar))) in closed form, per
  example; the prior defaults to N(0, I)."""
  return 0.5 * jnp.sum(prior_logvar - logvar - 1.0
                       + (jnp.exp(logvar) + (mean - prior_mean) ** 2) * jnp.exp(-prior_logvar),
                       axis=-1)


def neg_elbo_terms(model, params, images: jnp.ndarray, labels: jnp.ndarray | None,
                   eps: jnp.ndarray, likelihood_name: str
                   ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Per-example -log p(x|z) at z = mean + sigma * eps, and KL(q(z|x) || p(z)), each (B,)
  (p(z|y) for a VAE with a class prior).

  `model` is a VAE (aigc_jax.models.vae) whose call takes (images, labels, eps); the
  caller draws eps ~ N(0, I), (B, latent), so training, evaluation and outlier scores
  control their own randomness.
  """
  likelihood_params, posterior, prior = model.apply({"params": params}, images, labels, eps)
  recon = -get_likelihood(likelihood_name).log_prob(likelihood_params, images)
  return recon, gaussian_kl(*posterior, *prior)


def neg_elbo(model, params, images: jnp.ndarray, labels: jnp.ndarray | None,
             eps: jnp.ndarray, likelihood_name: str) -> jnp.ndarray:
  """Per-example negative ELBO in nats, (B,), from one posterior sample; lower is better.

  High values flag examples the model finds implausible: an outlier score.
  """
  recon, kl = neg_elbo_terms(model, params, images, labels, eps, likelihood_name)
  return recon + kl


def diagonal_gaussian_log_density(z: jnp.ndarray, mean: jnp.ndarray,
                                  logvar: jnp.ndarray) -> jnp.ndarray:
  """log N(z; mean, diag(exp(logvar))), summed over the last axis."""
  return -0.5 * jnp.sum(LOG_2PI + logvar + (z - mean) ** 2 * jnp.exp(-logvar), axis=-1)


def dynamic_binarize(rng: jax.Array, images: jnp.ndarray) -> jnp.ndarray:
  """Samples binary pixels with P(on) = intensity, returned in {-1, 1}.

  Published MNIST NLLs use this protocol: a fresh binarisation per training step and a
  fixed one (fixed key) of the test set.
  """
  return binarize(images, jax.random.uniform(rng, images.shape))


def binarize(images: jnp.ndarray, uniform_noise: jnp.ndarray) -> jnp.ndarray:
  """Pixel on where U(0, 1) noise < intensity: `dynamic_binarize` with the noise given."""
  on = uniform_noise < (images + 1.0) / 2.0
  return jnp.where(on, 1.0, -1.0).astype(images.dtype)
