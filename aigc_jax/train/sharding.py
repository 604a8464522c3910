"""Device mesh and array placement: batches split over every device, state replicated or
split FSDP-style.

The mesh has two axes, `data` x `fsdp`. Batches are split over both (every device gets
its own rows). The train state is replicated when `fsdp` has size 1 (the default), and
otherwise split over the `fsdp` axis array by array (fully sharded data parallelism,
ZeRO-3 style): each device stores 1/fsdp of the parameters and optimiser state, and XLA
gathers a layer's weights when a step needs them. The train step itself knows nothing of
devices; these shardings are applied from outside through `jax.jit`, so the same step
runs on one CPU, on N fake CPU devices, on a GPU host or a pod slice.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from aigc_jax.errors import InvalidInputError

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)  # A batch is split over all devices.
T = TypeVar("T")


def make_mesh(devices: list[jax.Device] | None = None, fsdp: int = 1) -> Mesh:
  """A `data` x `fsdp` mesh over all (global) devices."""
  devices = jax.devices() if devices is None else devices
  if fsdp < 1 or len(devices) % fsdp:
    raise InvalidInputError(f"--config.fsdp={fsdp} must divide the {len(devices)} devices; pick a "
                            f"divisor of {len(devices)} (1 keeps the state replicated).")
  return Mesh(np.asarray(devices).reshape(-1, fsdp), BATCH_AXES)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over every device."""
  return NamedSharding(mesh, P(BATCH_AXES))


def stacked_batch_sharded(mesh: Mesh) -> NamedSharding:
  """Chunks of batches (steps, batch, ...): the batch dimension split over every device."""
  return NamedSharding(mesh, P(None, BATCH_AXES))


def state_shardings(abstract_state: Any, mesh: Mesh) -> Any:
  """A sharding per state array: replicated, or split on the `fsdp` axis.

  With fsdp = f > 1, each array is split along its largest dimension that f divides;
  arrays with no such dimension (scalars, odd-sized biases) stay replicated.
  """
  f = mesh.shape[FSDP_AXIS]

  def sharding_of(leaf) -> NamedSharding:
    dims = [i for i, size in enumerate(leaf.shape) if size % f == 0]
    if f == 1 or not dims:
      return replicated(mesh)
    split = max(dims, key=lambda i: leaf.shape[i])
    return NamedSharding(mesh, P(*(FSDP_AXIS if i == split else None
                                   for i in range(len(leaf.shape)))))

  return jax.tree.map(sharding_of, abstract_state)


def fetch(tree: Any) -> Any:
  """Host copy of replicated arrays.

  Unlike `jax.device_get`, this also works in multi-process runs, where a replicated
  global array is not fully addressable but every process holds a full copy.
  """
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def check_batch_divisible(global_batch: int, mesh: Mesh) -> None:
  if global_batch % mesh.size:
    raise InvalidInputError(f"batch_size={global_batch} does not split over {mesh.size} devices; "
                            f"set --config.batch_size to a multiple of {mesh.size}.")


def to_global(local_batch: dict[str, np.ndarray], sharding: NamedSharding
              ) -> dict[str, jax.Array]:
  """Assembles every process's local rows into one global, data-sharded jax.Array."""
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def prefetch_to_devices(local_batches: Iterable[T], put: Callable[[T], Any], size: int = 2
                        ) -> Iterator[Any]:
  """Keeps `size` batches already `put` on devices, so host-to-device copies overlap compute.

  `put` is e.g. `functools.partial(to_global, sharding=...)`.
  """
  queue = collections.deque()
  iterator = iter(local_batches)
  for batch in iterator:
    queue.append(put(batch))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()
