"""Named random streams derived from one run key and the step number.

Every random draw in a train step comes from `step_streams(rng, step, ...)`, so a step's
randomness depends only on the seed and the step: a resumed run draws what an
uninterrupted one would have, on any number of devices.
"""

from __future__ import annotations

import zlib

import jax


def stream(rng: jax.Array, name: str) -> jax.Array:
  """A key for the stream `name` ("latent", "dropout", "noise", ...)."""
  return jax.random.fold_in(rng, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def step_streams(rng: jax.Array, step: jax.Array, *names: str) -> tuple[jax.Array, ...]:
  step_key = jax.random.fold_in(rng, step)
  return tuple(stream(step_key, name) for name in names)
