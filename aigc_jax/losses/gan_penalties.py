"""Discriminator regularisers, registered by name (`--config.d_reg=r1`, or 'r1,NAME2').

A regulariser is `penalty(discriminate, real, fake, rng, config) -> scalar`, added to D's
loss. `discriminate(images) -> logits (B,)` is D at its current parameters (labels, if
any, bound), so a penalty may differentiate through it -- gradient penalties do. Each
reads its own coefficient from the config; a user's penalty adds its key to their config.
Gradients are per example because D scores examples independently (BatchNorm in D
breaks that, which is why WGAN-GP asks for a critic without it).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from aigc_jax.errors import InvalidInputError

Discriminate = Callable[[jnp.ndarray], jnp.ndarray]
Penalty = Callable[[Discriminate, jnp.ndarray, jnp.ndarray, jax.Array,
                    ml_collections.ConfigDict], jnp.ndarray]

D_REGULARIZERS: dict[str, Penalty] = {}


def register_d_regularizer(name: str, penalty: Penalty) -> Penalty:
  if name in D_REGULARIZERS or name == "none":
    raise ValueError(f"A discriminator regulariser named '{name}' is already registered.")
  D_REGULARIZERS[name] = penalty
  return penalty


def get_d_regularizers(names: str) -> dict[str, Penalty]:
  """'none' -> {}; 'r1' or 'r1,wgan_gp' -> those registered penalties by name, in order."""
  chosen = [n.strip() for n in names.split(",") if n.strip() not in ("", "none")]
  unknown = [n for n in chosen if n not in D_REGULARIZERS]
  if unknown:
    raise InvalidInputError(f"Unknown discriminator regulariser(s) {unknown}; registered: "
                            f"{sorted(D_REGULARIZERS)} (or 'none'). Register one with "
                            "aigc_jax.losses.gan_penalties.register_d_regularizer.")
  return {n: D_REGULARIZERS[n] for n in chosen}


def input_gradient_sq_norms(discriminate: Discriminate, images: jnp.ndarray) -> jnp.ndarray:
  """||d D(x_i) / d x_i||^2 for each example, (B,)."""
  grads = jax.grad(lambda x: jnp.sum(discriminate(x)))(images)
  return jnp.sum(jnp.square(grads.reshape((grads.shape[0], -1))), axis=-1)


def r1(discriminate, real, fake, rng, config):
  """gamma/2 E||grad D(x_real)||^2: zero-centred penalty on real data (Mescheder et al. 2018)."""
  del fake, rng
  return 0.5 * config.r1_gamma * jnp.mean(input_gradient_sq_norms(discriminate, real))


def wgan_gp(discriminate, real, fake, rng, config):
  """lambda E(||grad D(x_hat)|| - 1)^2 at random real/fake interpolates (Gulrajani et al. 2017)."""
  mix = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  between = mix * real + (1.0 - mix) * fake
  # The epsilon keeps sqrt's gradient finite where D is locally flat.
  norms = jnp.sqrt(input_gradient_sq_norms(discriminate, between) + 1e-12)
  return config.gp_weight * jnp.mean(jnp.square(norms - 1.0))


register_d_regularizer("r1", r1)
register_d_regularizer("wgan_gp", wgan_gp)


def l2_penalty(params) -> jnp.ndarray:
  """1/2 ||theta||^2: the weight penalty of the seed's regularised generator objective."""
  return 0.5 * sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params))
