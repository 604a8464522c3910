"""How the loop spreads train steps over devices: sharded `jax.jit` (default) or `jax.pmap`.

Both runners take and give back the loop's *canonical* state -- global arrays on the
mesh, replicated (or split by `--config.fsdp`, which only the sharded jit supports), as
checkpoints restore it and samplers and evaluators read it -- and both consume each
process's local rows of the global batch, so everything outside the step (data,
checkpoints, logs) is the same for either. `--config.parallel=pmap` is for users who want
per-device code with explicit collectives; see batch_axis.py for what a step does
differently under it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from aigc_jax.errors import InvalidInputError
from aigc_jax.train import sharding
from aigc_jax.train.batch_axis import AXIS, batch_axis
from aigc_jax.train.sharding import fetch

MultiStep = Callable[[Any, dict, jax.Array], tuple[Any, dict]]


class ShardedJit:
  """One program over the global mesh: batch split over devices, state as `state_sharding`
  (replicated, or FSDP-split; see sharding.py)."""

  def __init__(self, multi_step: MultiStep, mesh: Mesh, state_sharding: Any):
    repl = sharding.replicated(mesh)
    self._chunk_sharding = sharding.stacked_batch_sharded(mesh)
    self.step = jax.jit(multi_step, in_shardings=(state_sharding, self._chunk_sharding, repl),
                        out_shardings=(state_sharding, repl), donate_argnums=0)

  def to_running(self, state: Any) -> Any:
    return state

  def to_canonical(self, state: Any) -> Any:
    return state

  def metrics(self, metrics: dict) -> dict:
    return metrics

  def device_batches(self, local_chunks: Iterable[dict]) -> Iterator[dict]:
    return sharding.prefetch_to_devices(
        local_chunks, functools.partial(sharding.to_global, sharding=self._chunk_sharding))


class Pmap:
  """The step mapped over devices with `jax.pmap`; each device holds a copy of the state.

  Per-device values live in global arrays with a leading device axis split over the mesh
  (what pmap consumes since JAX 0.8, and what works across processes). Conversions to
  and from the replicated canonical state go through the host; the loop makes them only
  at start-up and at sample, eval and checkpoint events, never per step.
  """

  def __init__(self, multi_step: MultiStep, mesh: Mesh):
    self._repl = sharding.replicated(mesh)
    self._per_device = sharding.batch_sharded(mesh)  # Leading (device) axis split.
    self._local_devices = len(mesh.local_devices)
    self.step = jax.pmap(multi_step, axis_name=AXIS, in_axes=(0, 0, None), donate_argnums=0,
                         devices=list(mesh.devices.flat))

  def to_running(self, state: Any) -> Any:
    n = self._local_devices
    return jax.tree.map(
        lambda x: self._global(np.broadcast_to(x, (n, *x.shape))), fetch(state))

  def to_canonical(self, state: Any) -> Any:
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
        self._repl, np.asarray(x.addressable_data(0))[0]), state)

  def metrics(self, metrics: dict) -> dict:
    return jax.tree.map(lambda m: m.addressable_data(0)[0], metrics)  # Equal everywhere.

  def device_batches(self, local_chunks: Iterable[dict]) -> Iterator[dict]:
    return sharding.prefetch_to_devices(local_chunks, self._put)

  def _put(self, chunk: dict[str, np.ndarray]) -> dict:
    """(k, L, ...) host rows -> (devices, k, L / devices, ...), one slice per device."""
    n = self._local_devices
    return jax.tree.map(lambda x: self._global(
        x.reshape(x.shape[0], n, x.shape[1] // n, *x.shape[2:]).swapaxes(0, 1)), chunk)

  def _global(self, local: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self._per_device, np.ascontiguousarray(local))


def make_runner(config: ml_collections.ConfigDict, multi_step: MultiStep, mesh: Mesh,
                state_sharding: Any) -> ShardedJit | Pmap:
  if not batch_axis(config):
    return ShardedJit(multi_step, mesh, state_sharding)
  if mesh.shape[sharding.FSDP_AXIS] > 1:
    raise InvalidInputError("--config.fsdp > 1 splits the state with sharded jit; pmap keeps a "
                            "full copy per device. Use --config.parallel=jit, or --config.fsdp=1.")
  return Pmap(multi_step, mesh)
