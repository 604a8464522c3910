"""VAE family: state, ELBO train step with beta and KL warm-up, masked eval, sampling."""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from aigc_jax.data.images import ImageSpec
from aigc_jax.errors import InvalidInputError
from aigc_jax.losses.vae import binarize, get_likelihood, neg_elbo_terms
from aigc_jax.models.vae import VAE, ClassPrior, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from aigc_jax.train import dp, microbatch
from aigc_jax.train.batch_axis import batch_axis, batch_mean, per_example
from aigc_jax.train.family import Family, balanced_labels
from aigc_jax.train.precision import with_compute_dtype
from aigc_jax.train.rng import step_streams


@flax.struct.dataclass
class VAEState:
  step: jax.Array
  params: flax.core.FrozenDict
  opt_state: optax.OptState


def build_model(config: ml_collections.ConfigDict, spec: ImageSpec) -> VAE:
  m = config.model
  num_classes = spec.num_classes if m.conditional else 0
  out = get_likelihood(config.likelihood).params_per_channel
  # .get: runs saved before the key existed.
  prior = ClassPrior(num_classes, m.latent_dim) if num_classes and m.get("class_prior") else None
  if m.arch == "mlp":
    return VAE(MLPEncoder(m.latent_dim, tuple(m.hidden), num_classes),
               MLPDecoder(spec.image_shape, out, tuple(m.hidden), num_classes), prior)
  if m.arch == "conv":
    return VAE(ConvEncoder(m.latent_dim, tuple(m.channels), m.dense, num_classes),
               ConvDecoder(spec.image_shape, out, tuple(reversed(m.channels)), num_classes),
               prior)
  raise InvalidInputError(f"Unknown VAE architecture model.arch='{m.arch}'; use 'mlp' or 'conv'.")


def _labels(config, batch):
  return batch["label"] if config.model.conditional else None


def _inputs(config, batch, noise_rng, axis=None):
  images = batch["image"]
  if not config.binarize:
    return images
  return binarize(images, per_example(jax.random.uniform, noise_rng, images.shape, axis))


def create_state(config: ml_collections.ConfigDict, rng: jax.Array, spec: ImageSpec) -> VAEState:
  model = build_model(config, spec)
  images = jnp.zeros((1, *spec.image_shape))
  labels = jnp.zeros((1,), jnp.int32) if config.model.conditional else None
  params = model.init(rng, images, labels, jnp.zeros((1, config.model.latent_dim)))["params"]
  return VAEState(step=jnp.zeros((), jnp.int32), params=params,
                  opt_state=optax.adam(config.optimizer.learning_rate).init(params))


def make_train_step(config: ml_collections.ConfigDict, spec: ImageSpec):
  model = with_compute_dtype(build_model(config, spec), config)  # Evaluation stays float32.
  tx = optax.adam(config.optimizer.learning_rate)
  axis = batch_axis(config)
  private = dp.is_private(config)

  def train_step(state: VAEState, batch, rng):
    latent_rng, noise_rng, dp_rng = step_streams(rng, state.step, "latent", "noise",
                                                       "dp_noise")
    images = _inputs(config, batch, noise_rng, axis)
    eps = per_example(jax.random.normal, latent_rng,
                      (images.shape[0], config.model.latent_dim), axis)
    # KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): beta ramps up linearly.
    warmup = jnp.minimum(1.0, (state.step + 1) / max(config.kl_warmup_steps, 1))
    beta = config.beta * warmup

    def objective(params, examples, _):
      recon, kl = neg_elbo_terms(model, params, examples["images"], examples["labels"],
                                 examples["eps"], config.likelihood)
      means = {"neg_elbo": jnp.mean(recon + kl), "recon": jnp.mean(recon), "kl": jnp.mean(kl)}
      # data.balance='reweight': each example's class weight scales its loss.
      weights = examples["weights"] if examples["weights"] is not None else 1.0
      return jnp.mean(weights * (recon + beta * kl)), means

    examples = {"images": images, "labels": _labels(config, batch), "eps": eps,
                "weights": batch.get("weight")}
    k = microbatch.num_microbatches(config, len(images))
    extra = {}
    if private:  # DP-SGD: clipped per-example gradients and noise (dp.py).
      (loss, means), grads, extra["clipped_share"] = dp.private_gradient(
          objective, state.params, examples, batch["mask"], dp_rng, microbatches=k,
          axis=axis, **dp.step_settings(config))
    else:
      (loss, means), grads = microbatch.value_and_grad(objective, state.params, examples, k)
      grads = batch_mean(grads, axis)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, **means, "beta": beta, "grad_norm": optax.tree.norm(grads),
               "param_norm": optax.tree.norm(params), **extra}
    return (state.replace(step=state.step + 1, params=params, opt_state=opt_state),
            batch_mean(metrics, axis))

  return train_step


def make_eval_step(config: ml_collections.ConfigDict, spec: ImageSpec):
  """Masked sums of the (beta = 1) negative ELBO and its terms over a held-out batch."""
  model = build_model(config, spec)

  def eval_step(state: VAEState, batch, rng):
    latent_rng, noise_rng = jax.random.split(rng)
    images = _inputs(config, batch, noise_rng)
    eps = jax.random.normal(latent_rng, (images.shape[0], config.model.latent_dim))
    recon, kl = neg_elbo_terms(model, state.params, images, _labels(config, batch), eps,
                               config.likelihood)
    mask = batch["mask"]
    return {"neg_elbo": jnp.sum((recon + kl) * mask), "recon": jnp.sum(recon * mask),
            "kl": jnp.sum(kl * mask), "count": jnp.sum(mask)}

  return eval_step


def make_sampler(config: ml_collections.ConfigDict, spec: ImageSpec):
  """Prior samples, shown as the decoder's mean E[x|z] (the usual VAE sample picture)."""
  model = build_model(config, spec)
  likelihood = get_likelihood(config.likelihood)

  def sample(state: VAEState, rng: jax.Array, num_samples: int, labels=None) -> jax.Array:
    if config.model.conditional and labels is None:
      labels = balanced_labels(num_samples, spec.num_classes)
    eps = jax.random.normal(rng, (num_samples, config.model.latent_dim))
    z = model.apply({"params": state.params}, labels, eps, method=VAE.sample_prior)
    params = model.apply({"params": state.params}, z, labels, method=VAE.decode)
    return likelihood.mean(params)

  return sample


FAMILY = Family(create_state=create_state, make_train_step=make_train_step,
                make_sampler=make_sampler, make_eval_step=make_eval_step,
                build_model=build_model)
