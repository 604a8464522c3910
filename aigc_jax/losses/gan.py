"""GAN objectives, registered by name so a config can pick one (`--config.loss=NAME`).

A loss is a pair of pure functions on discriminator logits. Adding one is a function pair
and a `register_gan_loss` call, in or outside this package; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from aigc_jax.errors import InvalidInputError


class GANLoss(NamedTuple):
  """discriminator(real_logits, fake_logits) and generator(fake_logits) -> scalar."""

  discriminator: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
  generator: Callable[[jnp.ndarray], jnp.ndarray]


GAN_LOSSES: dict[str, GANLoss] = {}


def register_gan_loss(name: str, loss: GANLoss) -> GANLoss:
  if name in GAN_LOSSES:
    raise ValueError(f"A GAN loss named '{name}' is already registered.")
  GAN_LOSSES[name] = loss
  return loss


def weighted_mean(loss_fn: Callable[..., jnp.ndarray], weights: jnp.ndarray | None,
                  *logits: jnp.ndarray) -> jnp.ndarray:
  """loss_fn(*logits) with example i's term scaled by weights[i] (None: unweighted).

  Every registered loss is a mean of per-example terms, so evaluating it on each example
  alone and averaging the weighted results is the weighted loss (for the discriminator,
  real i and fake i share weight i).
  """
  if weights is None:
    return loss_fn(*logits)
  per_example = jax.vmap(lambda *row: loss_fn(*(x[None] for x in row)))(*logits)
  return jnp.mean(weights * per_example)


def get_gan_loss(name: str) -> GANLoss:
  try:
    return GAN_LOSSES[name]
  except KeyError:
    raise InvalidInputError(
        f"Unknown GAN loss '{name}'; registered: {sorted(GAN_LOSSES)}. Register a new one "
        "with aigc_jax.losses.gan.register_gan_loss.") from None


def _non_saturating_d(real_logits, fake_logits):
  # BCE with targets 1 (real) and 0 (fake), written on logits: -log s(r) - log(1 - s(f)).
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def _non_saturating_g(fake_logits):
  # -log s(f): strong gradients early, when D rejects fakes easily (Goodfellow et al. 2014).
  return jnp.mean(jax.nn.softplus(-fake_logits))


NON_SATURATING = register_gan_loss("non_saturating",
                                   GANLoss(_non_saturating_d, _non_saturating_g))


def _hinge_d(real_logits, fake_logits):
  # Margin loss of geometric GAN / SAGAN / BigGAN: D stops pushing once a logit clears 1.
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def _raise_fake_scores(fake_logits):
  # G simply raises D's score of its samples (hinge and Wasserstein alike).
  return -jnp.mean(fake_logits)


def _wasserstein_d(real_logits, fake_logits):
  # Critic estimate of -W1 (Arjovsky et al. 2017); needs a Lipschitz critic: pair it with
  # d_reg='wgan_gp' or d_norm='spectral'.
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


HINGE = register_gan_loss("hinge", GANLoss(_hinge_d, _raise_fake_scores))
WASSERSTEIN = register_gan_loss("wasserstein", GANLoss(_wasserstein_d, _raise_fake_scores))
