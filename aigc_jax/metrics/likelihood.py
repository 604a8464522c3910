"""The importance-weighted likelihood bound of a VAE (the ELBO is losses.vae.neg_elbo).

IWAE (Burda et al. 2016): log p(x) >= E[log (1/k) sum_i p(x, z_i) / q(z_i | x)], a bound
that tightens as k grows and equals the ELBO at k = 1. With k = 1000 it is the standard
"test NLL" of the VAE literature.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from aigc_jax.losses.vae import diagonal_gaussian_log_density, get_likelihood
from aigc_jax.models.vae import VAE


def iwae_log_likelihood(model: VAE, params, images, labels, rng, likelihood_name: str,
                        num_samples: int, chunk_size: int = 100) -> jax.Array:
  """Per-example IWAE estimate of log p(x) in nats, (B,), with `num_samples` samples.

  Samples are drawn `chunk_size` at a time inside a `lax.map`, so memory stays at
  chunk_size x B decoded images whatever k is.
  """
  chunk_size = max(d for d in range(1, min(chunk_size, num_samples) + 1)
                   if num_samples % d == 0)  # Largest divisor of k that fits.
  likelihood = get_likelihood(likelihood_name)
  mean, logvar = model.apply({"params": params}, images, labels, method=VAE.encode)
  batch, latent = mean.shape
  prior_mean, prior_logvar = model.apply({"params": params}, labels, mean.shape,
                                         method=VAE.prior)

  def log_weights(key):  # -> (chunk_size, B)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, (chunk_size, batch, latent))
    flat_z = z.reshape((chunk_size * batch, latent))
    flat_labels = None if labels is None else jnp.tile(labels, chunk_size)
    decoded = model.apply({"params": params}, flat_z, flat_labels, method=VAE.decode)
    tiled = jnp.broadcast_to(images, (chunk_size, *images.shape)).reshape(
        (chunk_size * batch, *images.shape[1:]))
    log_px = likelihood.log_prob(decoded, tiled).reshape((chunk_size, batch))
    log_pz = diagonal_gaussian_log_density(z, prior_mean, prior_logvar)
    log_qz = diagonal_gaussian_log_density(z, mean, logvar)
    return log_px + log_pz - log_qz

  keys = jax.random.split(rng, num_samples // chunk_size)
  weights = jax.lax.map(log_weights, keys).reshape((num_samples, batch))
  return jax.scipy.special.logsumexp(weights, axis=0) - jnp.log(num_samples)
