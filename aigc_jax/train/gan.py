"""GAN family: state, one-call D+G train step, and sampling from the EMA generator."""

from __future__ import annotations

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from aigc_jax.data.sources import ImageSpec
from aigc_jax.losses.gan import get_gan_loss
from aigc_jax.models.mlp_gan import MLPDiscriminator, MLPGenerator
from aigc_jax.train.family import Family
from aigc_jax.train.rng import step_streams


@flax.struct.dataclass
class GANState:
  """Everything a GAN run carries from step to step; one pytree, saved whole."""

  step: jax.Array
  g_params: flax.core.FrozenDict
  d_params: flax.core.FrozenDict
  g_opt_state: optax.OptState
  d_opt_state: optax.OptState
  ema_g_params: flax.core.FrozenDict  # Polyak average of g_params; used for sampling.


def build_models(config: ml_collections.ConfigDict, spec: ImageSpec
                 ) -> tuple[nn.Module, nn.Module]:
  arch = config.model.arch
  if arch == "mlp":
    return (MLPGenerator(spec.image_shape, tuple(config.model.g_hidden),
                         config.model.negative_slope),
            MLPDiscriminator(tuple(config.model.d_hidden), config.model.negative_slope))
  raise ValueError(f"Unknown GAN architecture model.arch='{arch}'; available: 'mlp'.")


def build_optimizers(config: ml_collections.ConfigDict
                     ) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  opt = config.optimizer
  return (optax.adam(opt.g_learning_rate, b1=opt.b1, b2=opt.b2),
          optax.adam(opt.d_learning_rate, b1=opt.b1, b2=opt.b2))


def create_state(config: ml_collections.ConfigDict, rng: jax.Array,
                 spec: ImageSpec) -> GANState:
  generator, discriminator = build_models(config, spec)
  g_tx, d_tx = build_optimizers(config)
  g_rng, d_rng = jax.random.split(rng)
  g_params = generator.init(g_rng, jnp.zeros((1, config.latent_dim)))["params"]
  d_params = discriminator.init(d_rng, jnp.zeros((1, *spec.image_shape)))["params"]
  return GANState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                  g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params),
                  ema_g_params=g_params)


def make_train_step(config: ml_collections.ConfigDict, spec: ImageSpec):
  """Returns train_step(state, batch, rng) -> (state, metrics), a pure function.

  One call updates D on real and generated images, then G against the updated D. The
  generator's forward pass is run once and reused for both updates (via `jax.vjp`), as
  the usual PyTorch recipe reuses `fake` -- G's update sees exactly the samples D saw.
  """
  generator, discriminator = build_models(config, spec)
  g_tx, d_tx = build_optimizers(config)
  loss = get_gan_loss(config.loss)

  def train_step(state: GANState, batch, rng):
    real = batch["image"]
    (latent_rng,) = step_streams(rng, state.step, "latent")
    z = jax.random.normal(latent_rng, (real.shape[0], config.latent_dim))
    fake, pull_back_to_g = jax.vjp(
        lambda p: generator.apply({"params": p}, z), state.g_params)

    def d_objective(d_params):
      # One discriminator pass over [real; fake] (B*2 rows) instead of two.
      logits = discriminator.apply(
          {"params": d_params}, jnp.concatenate([real, jax.lax.stop_gradient(fake)]))
      real_logits, fake_logits = jnp.split(logits, 2)
      return loss.discriminator(real_logits, fake_logits), (real_logits, fake_logits)

    (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(
        d_objective, has_aux=True)(state.d_params)
    d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    g_loss, fake_grads = jax.value_and_grad(
        lambda x: loss.generator(discriminator.apply({"params": d_params}, x)))(fake)
    (g_grads,) = pull_back_to_g(fake_grads)
    g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)
    ema_g_params = optax.incremental_update(g_params, state.ema_g_params,
                                            step_size=1.0 - config.ema_decay)

    new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                              g_opt_state=g_opt_state, d_opt_state=d_opt_state,
                              ema_g_params=ema_g_params)
    metrics = {
        "d_loss": d_loss, "g_loss": g_loss,
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),  # D's belief real is real.
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),  # D's belief fake is real.
        "g_grad_norm": optax.tree.norm(g_grads), "d_grad_norm": optax.tree.norm(d_grads),
        "g_param_norm": optax.tree.norm(g_params),
        "d_param_norm": optax.tree.norm(d_params),
    }
    return new_state, metrics

  return train_step


def make_sampler(config: ml_collections.ConfigDict, spec: ImageSpec):
  generator, _ = build_models(config, spec)

  def sample(state: GANState, rng: jax.Array, num_samples: int, labels=None) -> jax.Array:
    if labels is not None:
      raise ValueError("This GAN is unconditional; it cannot sample given labels.")
    z = jax.random.normal(rng, (num_samples, config.latent_dim))
    return generator.apply({"params": state.ema_g_params}, z)

  return sample


FAMILY = Family(create_state=create_state, make_train_step=make_train_step,
                make_sampler=make_sampler)
