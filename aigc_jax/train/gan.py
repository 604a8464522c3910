"""GAN family: state, one-call D+G train step, and sampling from the EMA generator.

Everything a researcher varies is picked by name in the config: the backbone
(`model.arch`: 'mlp' or 'dcgan'), class conditioning (`model.conditional`), D's
normalisation (`model.d_norm`), the loss (`loss`, aigc_jax.losses.gan), D regularisers
(`d_reg`, aigc_jax.losses.gan_penalties), an L2 penalty on G (`g_l2`), DiffAugment
(`diffaugment`) and the EMA (`ema_decay`).
"""

from __future__ import annotations

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from aigc_jax.data.diff_augment import diff_augment, parse_policy
from aigc_jax.data.images import ImageSpec
from aigc_jax.errors import InvalidInputError
from aigc_jax.losses.gan import get_gan_loss, weighted_mean
from aigc_jax.losses.gan_penalties import get_d_regularizers, l2_penalty
from aigc_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
from aigc_jax.models.mlp_gan import MLPDiscriminator, MLPGenerator
from aigc_jax.train import dp, microbatch
from aigc_jax.train.batch_axis import batch_axis, batch_mean, per_device, per_example
from aigc_jax.train.family import Family, balanced_labels
from aigc_jax.train.precision import with_compute_dtype
from aigc_jax.train.rng import step_streams, stream


@flax.struct.dataclass
class GANState:
  """Everything a GAN run carries from step to step; one pytree, saved whole."""

  step: jax.Array
  g_params: flax.core.FrozenDict
  d_params: flax.core.FrozenDict
  g_opt_state: optax.OptState
  d_opt_state: optax.OptState
  ema_g_params: flax.core.FrozenDict  # Polyak average of g_params; used for sampling.
  # Non-trained variables ('batch_stats': BatchNorm running statistics, spectral-norm
  # power-iteration vectors); empty for models without them.
  g_batch_stats: flax.core.FrozenDict
  d_batch_stats: flax.core.FrozenDict


def num_label_classes(config: ml_collections.ConfigDict, spec: ImageSpec) -> int:
  """spec.num_classes for a conditional model, 0 otherwise."""
  if not config.model.conditional:
    return 0
  if spec.num_classes < 2:
    raise InvalidInputError("model.conditional=True needs a labelled dataset; this one has "
                            f"{spec.num_classes} classes. Set --config.model.conditional=False.")
  return spec.num_classes


def build_models(config: ml_collections.ConfigDict, spec: ImageSpec
                 ) -> tuple[nn.Module, nn.Module]:
  m, num_classes = config.model, num_label_classes(config, spec)
  if m.arch == "mlp":
    operands = m.get("dense_operands", "float32")  # .get: runs saved before the key existed.
    return (MLPGenerator(spec.image_shape, tuple(m.g_hidden), m.negative_slope, num_classes,
                         m.label_features, dense_operands=operands),
            MLPDiscriminator(tuple(m.d_hidden), m.negative_slope, num_classes, m.d_norm,
                             dense_operands=operands))
  if m.arch == "dcgan":
    axis = batch_axis(config)
    operands = m.get("conv_operands", "float32")  # .get: runs saved before the key existed.
    return (DCGANGenerator(spec.image_shape, tuple(m.g_widths), num_classes, m.label_features,
                           batch_axis=axis, conditional_norm=m.get("g_conditional_norm", False),
                           conv_operands=operands),
            DCGANDiscriminator(tuple(m.d_widths), num_classes, m.d_norm, batch_axis=axis,
                               conv_operands=operands))
  raise InvalidInputError(f"Unknown GAN architecture model.arch='{m.arch}'; available: "
                          "'mlp', 'dcgan'.")


def learning_rate(peak: float, config: ml_collections.ConfigDict) -> optax.ScalarOrSchedule:
  """`peak`, held until optimizer.decay_start and from there falling linearly to 0 at
  num_steps (-1: held throughout). A GAN's iterates circle their equilibrium at a fixed
  step size; shrinking it lets them settle, which the EMA of G alone does not."""
  start = config.optimizer.get("decay_start", -1)  # .get: runs saved before the key existed.
  if start < 0:
    return peak
  return optax.join_schedules(
      [optax.constant_schedule(peak),
       optax.linear_schedule(peak, 0.0, max(1, config.num_steps - start))], [start])


def build_optimizers(config: ml_collections.ConfigDict
                     ) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  opt = config.optimizer
  return (optax.adam(learning_rate(opt.g_learning_rate, config), b1=opt.b1, b2=opt.b2),
          optax.adam(learning_rate(opt.d_learning_rate, config), b1=opt.b1, b2=opt.b2))


def _variables(params, batch_stats) -> dict:
  return {"params": params, "batch_stats": batch_stats}


def create_state(config: ml_collections.ConfigDict, rng: jax.Array,
                 spec: ImageSpec) -> GANState:
  # Sampling (make_sampler) stays float32.
  generator, discriminator = (with_compute_dtype(m, config) for m in build_models(config, spec))
  g_tx, d_tx = build_optimizers(config)
  g_rng, d_rng = jax.random.split(rng)
  labels = jnp.zeros((1,), jnp.int32) if config.model.conditional else None
  g_vars = generator.init(g_rng, jnp.zeros((1, config.latent_dim)), labels, train=False)
  d_vars = discriminator.init(d_rng, jnp.zeros((1, *spec.image_shape)), labels, train=False)
  g_params, d_params = g_vars["params"], d_vars["params"]
  return GANState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                  g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params),
                  ema_g_params=g_params, g_batch_stats=g_vars.get("batch_stats", {}),
                  d_batch_stats=d_vars.get("batch_stats", {}))


def make_train_step(config: ml_collections.ConfigDict, spec: ImageSpec):
  """Returns train_step(state, batch, rng) -> (state, metrics), a pure function.

  One call updates D on real and generated images, then G against the updated D. The
  generator's forward pass is run once and reused for both updates (via `jax.vjp`), as
  the usual PyTorch recipe reuses `fake` -- G's update sees exactly the samples D saw.
  A conditional G draws for the batch's own labels, so D compares like with like.

  With `grad_accum_steps` = k > 1, both updates take their gradients over k microbatches
  (microbatch.py), and G's pass is rerun per microbatch for its update instead of being
  kept for the whole batch: the memory saving is the point. The fakes are the same, so
  without BatchNorm the step equals k = 1 up to float rounding; with it, statistics are
  per microbatch.
  """
  # Sampling (make_sampler) stays float32.
  generator, discriminator = (with_compute_dtype(m, config) for m in build_models(config, spec))
  g_tx, d_tx = build_optimizers(config)
  loss = get_gan_loss(config.loss)
  regularizers = get_d_regularizers(config.d_reg)
  parse_policy(config.diffaugment)  # Fails now, naming the bad op, rather than mid-trace.
  axis = batch_axis(config)
  augment = lambda rng, images: diff_augment(per_device(rng, axis), images, config.diffaugment)
  private = dp.is_private(config)
  num_classes = num_label_classes(config, spec)

  def discriminate(d_params, d_batch_stats, images, labels, groups=1):
    logits, updates = discriminator.apply(_variables(d_params, d_batch_stats), images, labels,
                                          train=True, groups=groups, mutable=["batch_stats"])
    return logits, updates.get("batch_stats", {})

  def train_step(state: GANState, batch, rng):
    real = batch["image"]
    labels = batch["label"] if config.model.conditional else None
    # data.balance='reweight': pair i (real i, and fake i drawn for its label) and, for a
    # conditional G, fake i's G loss are scaled by real i's class weight.
    weights = batch.get("weight")
    g_weights = weights if config.model.conditional else None
    latent_rng, augment_rng, penalty_rng, label_rng, dp_rng = step_streams(
        rng, state.step, "latent", "augment", "penalty", "fake_label", "dp_noise")
    z = per_example(jax.random.normal, latent_rng, (real.shape[0], config.latent_dim), axis)
    # Fakes are drawn for the real batch's labels, so D compares like with like -- except
    # in a private run, where G's update must not read the data: uniform labels then.
    fake_labels = labels
    if private and labels is not None:
      fake_labels = per_example(lambda key, shape: jax.random.randint(key, shape, 0, num_classes),
                                label_rng, labels.shape, axis)
    k = microbatch.num_microbatches(config, real.shape[0])
    generate = lambda g_params, z, labels: generator.apply(
        _variables(g_params, state.g_batch_stats), z, labels, train=True,
        mutable=["batch_stats"])
    # G's pass, and how G's gradient will be taken from it: one pair of paths, the only
    # place k matters for G. k = 1 keeps the pass for the whole batch and later pulls the
    # loss gradient back through it (G runs once per step, as in the PyTorch recipe);
    # k > 1 reruns G per microbatch instead, so no whole-batch activations stay live.
    if k == 1:
      fake, pull_back_to_g, g_updates = jax.vjp(lambda p: generate(p, z, fake_labels),
                                                state.g_params, has_aux=True)

      def generator_gradients(g_loss_of):
        g_loss, fake_grads = jax.value_and_grad(g_loss_of)(fake, fake_labels, g_weights, 0)
        (g_grads,) = pull_back_to_g(fake_grads)
        return (g_loss, g_updates), g_grads
    else:
      fake, _ = generate(state.g_params, z, fake_labels)

      def generator_gradients(g_loss_of):
        def g_objective(g_params, examples, index):
          fake, updates = generate(g_params, examples["z"], examples["labels"])
          return g_loss_of(fake, examples["labels"], examples["weights"], index), updates

        return microbatch.value_and_grad(g_objective, state.g_params,
                                         {"z": z, "labels": fake_labels, "weights": g_weights},
                                         k)

    def d_objective(d_params, examples, index):
      real_aug_rng, fake_aug_rng = jax.random.split(jax.random.fold_in(augment_rng, index))
      real_in = augment(real_aug_rng, examples["real"])
      fake_in = augment(fake_aug_rng, jax.lax.stop_gradient(examples["fake"]))
      labels = examples["labels"]
      # Real and fake go through D as one batch, so each layer is one matmul over both
      # (a vmap over the pair made its weight gradients slow batched matmuls), and as two
      # groups, so BatchNorm in D normalises each on its own as in the DCGAN recipe.
      pair_labels = (None if labels is None
                     else jnp.concatenate([labels, examples["fake_labels"]]))
      logits, new_stats = discriminate(d_params, state.d_batch_stats,
                                       jnp.concatenate([real_in, fake_in]), pair_labels, 2)
      real_logits, fake_logits = jnp.split(logits, 2)
      d_loss = weighted_mean(loss.discriminator, examples["weights"], real_logits, fake_logits)
      at_current_d = lambda x: discriminate(d_params, state.d_batch_stats, x, labels)[0]
      rng = per_device(jax.random.fold_in(penalty_rng, index), axis)
      penalties = {name: penalty(at_current_d, real_in, fake_in, rng, config)
                   for name, penalty in regularizers.items()}
      summary = {"d_loss": d_loss, "d_real_logit": jnp.mean(real_logits),
                 "d_fake_logit": jnp.mean(fake_logits),
                 **{f"d_reg_{name}": value for name, value in penalties.items()}}
      return d_loss + sum(penalties.values()), (summary, new_stats)

    d_examples = {"real": real, "fake": fake, "labels": labels, "fake_labels": fake_labels,
                  "weights": weights}
    extra = {}
    if private:  # DP-SGD on D, the one network that reads data (dp.py).
      (_, (d_summary, d_batch_stats)), d_grads, extra["d_clipped_share"] = (
          dp.private_gradient(d_objective, state.d_params, d_examples, batch["mask"], dp_rng,
                              microbatches=k, axis=axis, **dp.step_settings(config)))
    else:
      (_, (d_summary, d_batch_stats)), d_grads = microbatch.value_and_grad(
          d_objective, state.d_params, d_examples, k)
      d_grads = batch_mean(d_grads, axis)
    d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    g_aug_rng = stream(augment_rng, "g")
    g_loss_of = lambda fake, labels, weights, index: weighted_mean(
        loss.generator, weights, discriminate(
            d_params, d_batch_stats, augment(jax.random.fold_in(g_aug_rng, index), fake),
            labels)[0])
    (g_loss, g_updates), g_grads = generator_gradients(g_loss_of)
    g_grads = batch_mean(g_grads, axis)
    if config.g_l2:  # Gradient of g_l2 * 1/2 ||theta||^2 added to G's.
      g_grads = jax.tree.map(lambda g, p: g + config.g_l2 * p, g_grads, state.g_params)
    g_opt_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_opt_updates)
    # Before ema_start the average is G itself: it must not remember the untrained G.
    ema_rate = jnp.where(state.step < config.get("ema_start", 0), 1.0, 1.0 - config.ema_decay)
    ema_g_params = optax.incremental_update(g_params, state.ema_g_params, step_size=ema_rate)

    new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                              g_opt_state=g_opt_state, d_opt_state=d_opt_state,
                              ema_g_params=ema_g_params,
                              g_batch_stats=g_updates.get("batch_stats", {}),
                              d_batch_stats=d_batch_stats)
    metrics = {
        **d_summary, **extra, "g_loss": g_loss,
        "g_grad_norm": optax.tree.norm(g_grads), "d_grad_norm": optax.tree.norm(d_grads),
        "g_param_norm": optax.tree.norm(g_params),
        "d_param_norm": optax.tree.norm(d_params),
    }
    if config.g_l2:
      metrics["g_l2_penalty"] = config.g_l2 * l2_penalty(state.g_params)
    return new_state, batch_mean(metrics, axis)

  return train_step


EMA_BN_STATISTICS = ("own", "live")
# Latents over which the averaged G's own BatchNorm statistics are measured.
OWN_STATISTICS_SAMPLES = 1_000


def own_statistics(generator: nn.Module, g_params, batch_stats, latent_dim: int,
                   num_classes: int):
  """BatchNorm statistics of G at `g_params`, measured on a fixed batch of its own samples.

  The running statistics a GAN state carries follow the live G; the Polyak average has
  other weights, and normalising its activations with the live G's statistics cost the
  28x28 cGAN 1.6 FID (docs/gan.md). One training-mode pass with momentum 0 over fixed
  latents (balanced labels) gives the average its own, the same at every call.
  """
  measure = generator.clone(bn_momentum=0.0, batch_axis=None)
  z = jax.random.normal(jax.random.key(0), (OWN_STATISTICS_SAMPLES, latent_dim))
  labels = balanced_labels(OWN_STATISTICS_SAMPLES, num_classes) if num_classes else None
  _, updates = measure.apply(_variables(g_params, batch_stats), z, labels, train=True,
                             mutable=["batch_stats"])
  return updates["batch_stats"]


def make_sampler(config: ml_collections.ConfigDict, spec: ImageSpec):
  """sample(state, rng, num, labels=None): EMA generator, BatchNorm in inference mode.

  With `ema_bn_statistics` 'own' (the default), BatchNorm uses statistics measured for the
  averaged weights (`own_statistics`); 'live' uses the training G's running statistics.
  A conditional model draws balanced classes when no labels are given.
  """
  generator, _ = build_models(config, spec)
  num_classes = num_label_classes(config, spec)
  # .get: runs saved before the key existed sampled with the live statistics.
  statistics = config.get("ema_bn_statistics", "live")
  if statistics not in EMA_BN_STATISTICS:
    raise InvalidInputError(f"Unknown ema_bn_statistics '{statistics}'; choose from "
                            f"{EMA_BN_STATISTICS}.")

  def sample(state: GANState, rng: jax.Array, num_samples: int, labels=None) -> jax.Array:
    if not num_classes and labels is not None:
      raise ValueError("This GAN is unconditional; it cannot sample given labels.")
    if num_classes and labels is None:
      labels = balanced_labels(num_samples, num_classes)
    batch_stats = state.g_batch_stats
    if statistics == "own" and batch_stats:
      batch_stats = own_statistics(generator, state.ema_g_params, batch_stats,
                                   config.latent_dim, num_classes)
    z = jax.random.normal(rng, (num_samples, config.latent_dim))
    return generator.apply(_variables(state.ema_g_params, batch_stats), z, labels,
                           train=False)

  return sample


def make_critic(config: ml_collections.ConfigDict, spec: ImageSpec):
  """critic(state, images, labels=None) -> (N,) logits of the trained D, BatchNorm in
  inference mode; images in the model's [-1, 1]. For discriminator rejection sampling
  (aigc_jax.quality.fusion), which reads D's logit as an estimate of log p_data / p_G."""
  _, discriminator = build_models(config, spec)

  def critic(state: GANState, images: jax.Array, labels=None) -> jax.Array:
    logits = discriminator.apply(_variables(state.d_params, state.d_batch_stats), images,
                                 labels, train=False)
    return jnp.reshape(logits, (images.shape[0],))

  return critic


FAMILY = Family(create_state=create_state, make_train_step=make_train_step,
                make_sampler=make_sampler, build_model=build_models)
