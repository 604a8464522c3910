"""Autoregressive sampling from a `CharTransformer` with its key/value cache.

`generate` is one jitted `lax.scan` over positions: each iteration feeds one token to the
cached model, then either keeps the next prompt token (while a row is still inside its
prompt) or samples one. Rows with prompts of different lengths run in lockstep.

Positions are learned up to `block_size`. When the cache is full, the last half-context
of tokens is re-encoded into a fresh cache at positions 0.., then decoding continues,
so the model always sees at least block_size / 2 characters of context.

`generate_ensemble` decodes with several models at once (multi-model fusion for text):
each keeps its own cache, and their next-token distributions are combined
(`combine_log_probs`) before the one token is sampled.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from aigc_jax.models.transformer import CharTransformer


def filter_logits(logits: jax.Array, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> jax.Array:
  """Temperature, then top-k, then nucleus (top-p) filtering; removed entries -> -inf."""
  logits = logits / jnp.maximum(temperature, 1e-6)
  if top_k and top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    # Keep the smallest prefix whose mass reaches top_p (always the most likely token).
    keep = jnp.cumsum(probs, axis=-1) - probs < top_p
    threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def empty_cache(model: CharTransformer, batch: int) -> dict:
  """The model's zeroed key/value cache for `batch` rows (index 0)."""
  return model.init(jax.random.key(0), jnp.zeros((batch, 1), jnp.int32), decode=True)["cache"]


COMBINE = ("mixture", "product")


def combine_log_probs(logits: jax.Array, combine: str) -> jax.Array:
  """(K, B, V) logits of K models -> (B, V) log-probabilities of their ensemble (up to a
  per-row constant for 'product').

  'mixture' averages the probabilities, log(1/K sum_k p_k): a token any member likes
  stays possible. 'product' averages the log-probabilities, the normalised geometric
  mean: a token survives only if every member gives it mass, so one member's invention
  is vetoed by the others.
  """
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  if combine == "mixture":
    return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(logits.shape[0])
  if combine == "product":
    return jnp.mean(log_probs, axis=0)
  raise ValueError(f"Unknown ensemble combination '{combine}'; choose from {COMBINE}.")


def generate(model: CharTransformer, params, prompts: jax.Array, prompt_lengths: jax.Array,
             rng: jax.Array, *, num_new: int, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0) -> jax.Array:
  """Continues each row's prompt by `num_new` tokens.

  Args:
    prompts: (B, P) int tokens, row b's prompt in its first prompt_lengths[b] entries.
    prompt_lengths: (B,) ints >= 1.
  Returns:
    (B, P + num_new) tokens; row b's continuation is [prompt_lengths[b], +num_new).
  """
  return generate_ensemble((model,), (params,), prompts, prompt_lengths, rng,
                           num_new=num_new, temperature=temperature, top_k=top_k,
                           top_p=top_p)


def generate_ensemble(models: tuple[CharTransformer, ...], params: tuple, prompts: jax.Array,
                      prompt_lengths: jax.Array, rng: jax.Array, *, num_new: int,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                      combine: str = "mixture") -> jax.Array:
  """`generate` with several models decoding together: each keeps its own cache, and every
  sampled token is drawn from their next-token distributions combined by `combine`
  (`combine_log_probs`), then filtered by temperature, top-k and top-p as for one model.
  The models must share the vocabulary and block size."""
  if len({m.block_size for m in models}) != 1 or len({m.vocab_size for m in models}) != 1:
    raise ValueError("Ensemble members must share block_size and vocab_size.")
  block_size = models[0].block_size
  batch, prompt_width = prompts.shape
  total = prompt_width + num_new
  keep = block_size // 2
  buffer = jnp.zeros((batch, total), jnp.int32).at[:, :prompt_width].set(prompts)
  fresh = tuple(empty_cache(m, batch) for m in models)

  def run(caches, tokens, positions):
    outputs = [m.apply({"params": p, "cache": c}, tokens, decode=True, positions=positions,
                       mutable=["cache"]) for m, p, c in zip(models, params, caches)]
    return (tuple(updated["cache"] for _, updated in outputs),
            jnp.stack([logits[:, -1] for logits, _ in outputs]))

  def step(carry, t):
    caches, filled, buffer = carry

    def next_in_cache(caches):
      token = jax.lax.dynamic_slice(buffer, (0, t), (batch, 1))
      return (*run(caches, token, filled[None]), filled + 1)

    def refill(_):  # Re-encode the last `keep` tokens and token t at positions 0..keep.
      window = jax.lax.dynamic_slice(buffer, (0, t - keep), (batch, keep + 1))
      return (*run(fresh, window, jnp.arange(keep + 1)), jnp.int32(keep + 1))

    caches, logits, filled = jax.lax.cond(filled == block_size, refill, next_in_cache, caches)
    log_probs = logits[0] if len(models) == 1 else combine_log_probs(logits, combine)
    sampled = jax.random.categorical(jax.random.fold_in(rng, t),
                                     filter_logits(log_probs, temperature, top_k, top_p))
    forced = jax.lax.dynamic_slice(buffer, (0, t + 1), (batch, 1))[:, 0]
    token = jnp.where(t + 1 < prompt_lengths, forced, sampled).astype(jnp.int32)
    buffer = jax.lax.dynamic_update_slice(buffer, token[:, None], (0, t + 1))
    return (caches, filled, buffer), None

  (_, _, buffer), _ = jax.lax.scan(step, (fresh, jnp.int32(0), buffer),
                                   jnp.arange(total - 1))
  return buffer


def continuations(tokens: jax.Array, prompt_lengths, num_new: int) -> list[list[int]]:
  """Row b's generated tokens, [prompt_lengths[b], prompt_lengths[b] + num_new)."""
  return [list(map(int, row[n:n + num_new])) for row, n in zip(tokens, prompt_lengths)]
