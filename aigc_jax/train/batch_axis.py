"""What a train step must say for it to run on one device's slice of the batch (pmap).

Under the default sharded `jax.jit` a step sees the global batch and XLA adds the
communication. Under `--config.parallel=pmap` each device sees 1/n of the batch, so three
things become explicit, and each helper here is the identity when `axis` is None (jit):

* means over the batch: each device's mean over its equal-sized slice, averaged over
  devices with `pmean`, is the global mean (`batch_mean`, for gradients and metrics);
* per-example noise: drawn for the whole global batch from the shared key, of which each
  device keeps its own rows (`per_example`), so it equals what the jit path draws --
  the pmap path then reproduces the jit path's updates to float tolerance;
* BatchNorm statistics: models take `axis_name=axis`, so they are global-batch ones.

Randomness drawn deep inside a helper (DiffAugment, WGAN-GP interpolation, dropout) uses
`per_device(rng, axis)` instead: the same distribution on every device, other numbers
than the jit path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import ml_collections

from aigc_jax.errors import InvalidInputError

AXIS = "batch"
PARALLEL_MODES = ("jit", "pmap")


def batch_axis(config: ml_collections.ConfigDict) -> str | None:
  """The pmap axis name a step's collectives use, or None under sharded jit."""
  mode = config.parallel
  if mode not in PARALLEL_MODES:
    raise InvalidInputError(f"--config.parallel={mode!r} is not one of {PARALLEL_MODES}.")
  return AXIS if mode == "pmap" else None


def batch_mean(tree: Any, axis: str | None) -> Any:
  return tree if axis is None else jax.lax.pmean(tree, axis)


def per_example(draw: Callable[[jax.Array, tuple[int, ...]], jax.Array], rng: jax.Array,
                shape: tuple[int, ...], axis: str | None) -> jax.Array:
  """`draw(rng, shape)` for this device's rows of the global batch (leading dimension)."""
  if axis is None:
    return draw(rng, shape)
  devices = jax.lax.psum(1, axis)  # A Python int: the axis size.
  rows = shape[0]
  every_row = draw(rng, (devices * rows, *shape[1:]))
  return jax.lax.dynamic_slice_in_dim(every_row, jax.lax.axis_index(axis) * rows, rows)


def per_device(rng: jax.Array, axis: str | None) -> jax.Array:
  """A key of this device's own under pmap, so devices do not repeat each other's draws."""
  return rng if axis is None else jax.random.fold_in(rng, jax.lax.axis_index(axis))
