"""Device mesh and array placement: batches split over a `data` axis, state replicated.

The train step itself knows nothing of devices; these shardings are applied from outside
through `jax.jit`, so the same step runs on one CPU, on N fake CPU devices, on a GPU host
or a pod slice.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
T = TypeVar("T")


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over all (global) devices, named `data`."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def stacked_batch_sharded(mesh: Mesh) -> NamedSharding:
  """Chunks of batches (steps, batch, ...): the batch dimension split over the data axis."""
  return NamedSharding(mesh, P(None, DATA_AXIS))


def check_batch_divisible(global_batch: int, mesh: Mesh) -> None:
  num = mesh.shape[DATA_AXIS]
  if global_batch % num:
    raise ValueError(f"batch_size={global_batch} does not split over {num} devices; set "
                     f"--config.batch_size to a multiple of {num}.")


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
