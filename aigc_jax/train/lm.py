"""Language-model family: next-character cross-entropy with AdamW, warm-up + cosine decay."""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from aigc_jax.data.text import TextSpec
from aigc_jax.models.decoding import generate
from aigc_jax.models.transformer import CharTransformer
from aigc_jax.train import dp, microbatch
from aigc_jax.train.batch_axis import batch_axis, batch_mean, per_device
from aigc_jax.train.family import Family
from aigc_jax.train.precision import compute_dtype
from aigc_jax.train.rng import step_streams


@flax.struct.dataclass
class LMState:
  step: jax.Array
  params: flax.core.FrozenDict
  opt_state: optax.OptState


def build_model(config: ml_collections.ConfigDict, spec: TextSpec,
                dtype: jnp.dtype = jnp.float32) -> CharTransformer:
  """The Transformer computing in `dtype` (its parameters are float32 either way)."""
  m = config.model
  return CharTransformer(vocab_size=spec.vocab_size, num_layers=m.num_layers,
                         num_heads=m.num_heads, width=m.width, block_size=config.block_size,
                         dropout=m.dropout, dtype=dtype, use_bias=m.use_bias,
                         # .get: runs saved before the key existed keep float32.
                         dense_operands=m.get("dense_operands", "float32"))


def learning_rate(config: ml_collections.ConfigDict) -> optax.Schedule:
  opt = config.optimizer
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=opt.learning_rate, warmup_steps=opt.warmup_steps,
      decay_steps=max(opt.decay_steps, opt.warmup_steps + 1), end_value=opt.min_learning_rate)


def build_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  opt = config.optimizer
  # Decay matrices only: biases, LayerNorm scales and position vectors stay undecayed.
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  return optax.chain(
      optax.clip_by_global_norm(opt.grad_clip),
      optax.adamw(learning_rate(config), b1=opt.b1, b2=opt.b2,
                  weight_decay=opt.weight_decay, mask=decay_mask))


def create_state(config: ml_collections.ConfigDict, rng: jax.Array, spec: TextSpec) -> LMState:
  model = build_model(config, spec)
  params = model.init(rng, jnp.zeros((1, config.block_size), jnp.int32))["params"]
  return LMState(step=jnp.zeros((), jnp.int32), params=params,
                 opt_state=build_optimizer(config).init(params))


def token_losses(model, params, tokens, *, train=False, dropout_rng=None) -> jax.Array:
  """Per-position cross-entropy (nats) of predicting tokens[:, 1:] from tokens[:, :-1]."""
  rngs = {"dropout": dropout_rng} if train else {}
  logits = model.apply({"params": params}, tokens[:, :-1], train=train, rngs=rngs)
  return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])


def make_train_step(config: ml_collections.ConfigDict, spec: TextSpec):
  model = build_model(config, spec, compute_dtype(config))  # Evaluation stays float32.
  tx = build_optimizer(config)
  schedule = learning_rate(config)
  axis = batch_axis(config)
  private = dp.is_private(config)

  def train_step(state: LMState, batch, rng):
    dropout_rng, dp_rng = step_streams(rng, state.step, "dropout", "dp_noise")
    dropout_rng = per_device(dropout_rng, axis)

    def objective(params, tokens, index):
      return jnp.mean(token_losses(model, params, tokens, train=True,
                                   dropout_rng=jax.random.fold_in(dropout_rng, index))), ()

    tokens = batch["tokens"]
    k = microbatch.num_microbatches(config, len(tokens))
    extra = {}
    if private:  # DP-SGD: clipped per-window gradients and noise (dp.py).
      (loss, _), grads, extra["clipped_share"] = dp.private_gradient(
          objective, state.params, tokens, batch["mask"], dp_rng, microbatches=k, axis=axis,
          **dp.step_settings(config))
    else:
      (loss, _), grads = microbatch.value_and_grad(objective, state.params, tokens, k)
      grads = batch_mean(grads, axis)
      loss = batch_mean(loss, axis)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "bits_per_char": loss / jnp.log(2.0),
               "learning_rate": schedule(state.step), "grad_norm": optax.tree.norm(grads),
               "param_norm": optax.tree.norm(params), **extra}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_eval_step(config: ml_collections.ConfigDict, spec: TextSpec):
  """Masked sums over every target character of a batch of evaluation windows."""
  model = build_model(config, spec)

  def eval_step(state: LMState, batch, rng):
    del rng  # Evaluation is deterministic (no dropout).
    losses = token_losses(model, state.params, batch["tokens"]) * batch["mask"]
    total = jnp.sum(losses)
    return {"loss": total, "bits_per_char": total / jnp.log(2.0),
            "count": jnp.sum(batch["mask"])}

  return eval_step


def make_sampler(config: ml_collections.ConfigDict, spec: TextSpec):
  """Continuations of `config.sample_prompt`, `config.sample_length` characters each."""
  model = build_model(config, spec)
  prompt = spec.encode(config.sample_prompt)

  def sample(state: LMState, rng: jax.Array, num_samples: int, labels=None) -> jax.Array:
    if labels is not None:
      raise ValueError("A language model takes a prompt, not labels.")
    prompts = jnp.broadcast_to(jnp.asarray(prompt), (num_samples, len(prompt)))
    lengths = jnp.full((num_samples,), len(prompt))
    return generate(model, state.params, prompts, lengths, rng,
                    num_new=config.sample_length, temperature=config.sample_temperature)

  return sample



FAMILY = Family(create_state=create_state, make_train_step=make_train_step,
                make_sampler=make_sampler, make_eval_step=make_eval_step,
                build_model=build_model)
