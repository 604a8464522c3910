"""Gradient accumulation: a batch's gradient computed a slice at a time.

`--config.grad_accum_steps=K` keeps the global batch and the update the same and only
changes memory: the step runs the forward and backward pass on K microbatches in turn
(a `lax.scan`) and averages their gradients, so activations for 1/K of the batch are
live at once. Noise drawn for the whole batch before the split (latents, binarisation) is
the same for any K, so K changes no number beyond float rounding; dropout, drawn inside
the model per microbatch, keeps its distribution but not its numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from aigc_jax.errors import InvalidInputError

# loss_fn(params, examples, index) -> (mean loss over the examples, aux of summaries such as
# means over the examples); index numbers the microbatch (for keys of randomness drawn
# inside it, such as dropout or augmentation).
LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, Any]]


def num_microbatches(config: ml_collections.ConfigDict, batch: int) -> int:
  k = config.grad_accum_steps
  if k < 1 or batch % k:
    raise InvalidInputError(f"--config.grad_accum_steps={k} must divide the batch the step sees "
                            f"({batch}); pick a divisor of it.")
  return k


def split(x: jax.Array, k: int) -> jax.Array:
  """(B, ...) -> (k, B/k, ...), microbatch j = rows j, j+k, j+2k, ...

  Strided rather than contiguous, so that every microbatch keeps rows on every device
  when the batch is split over devices in contiguous blocks.
  """
  return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)


def value_and_grad(loss_fn: LossFn, params: Any, examples: Any, k: int
                   ) -> tuple[tuple[jax.Array, Any], Any]:
  """`jax.value_and_grad(loss_fn, has_aux=True)(params, examples, 0)` in k microbatches.

  Microbatches are equal-sized, so the mean of their mean losses and gradients is the
  whole batch's, and so is the mean of their aux when aux holds means over examples (the
  contract). The loop over microbatches is unrolled: k is small, and XLA:CPU runs
  convolutions slowly inside loop bodies (see loop.make_multi_step).
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if k == 1:
    return grad_fn(params, examples, jnp.zeros((), jnp.int32))

  def accumulate(grad_sum, indexed_micro):
    index, micro = indexed_micro
    (loss, aux), grads = grad_fn(params, micro, index)
    return jax.tree.map(jnp.add, grad_sum, grads), (loss, aux)

  zeros = jax.tree.map(jnp.zeros_like, params)
  micros = (jnp.arange(k), jax.tree.map(lambda x: split(x, k), examples))
  grad_sum, (losses, aux) = jax.lax.scan(accumulate, zeros, micros, unroll=True)
  mean = lambda x: jnp.mean(x, axis=0)
  return (mean(losses), jax.tree.map(mean, aux)), jax.tree.map(lambda g: g / k, grad_sum)
