"""Held-out bits per character of language models decoding together (an ensemble).

The ensemble's probability of the next character is its members' distributions combined
as in decoding (`combine_log_probs`, renormalised): an average of probabilities
('mixture') or of log-probabilities ('product'). One member alone scores as the model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.data.text import TextData
from aigc_jax.models.decoding import combine_log_probs


def ensemble_bits_per_char(models: tuple, params: tuple, data: TextData, combine: str,
                           batch_size: int = 256) -> float:
  """Mean -log2 p(next character) over every target character of `data`."""

  @jax.jit
  def nats_and_count(params, tokens, mask):
    logits = jnp.stack([m.apply({"params": p}, tokens[:, :-1]) for m, p in zip(models, params)])
    log_probs = jax.nn.log_softmax(combine_log_probs(logits, combine), axis=-1)
    picked = jnp.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1)[..., 0]
    return -jnp.sum(picked * mask), jnp.sum(mask)

  total, count = 0.0, 0.0
  for batch in data.eval_batches(global_batch=batch_size):
    nats, seen = nats_and_count(params, batch["tokens"], batch["mask"])
    total, count = total + float(nats), count + float(seen)
  return total / count / np.log(2.0)
