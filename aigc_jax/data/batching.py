"""What image and text batches share: per-process batch sizes, a step-indexed tf.data
stream, and chunks of consecutive batches for scanned train steps.

Every training batch of this project is a pure function of (seed, step) (images.py,
text.py). `batches_by_step` turns such a function into a prefetched stream starting at
any step, which is what makes resuming O(1) and the global batch topology-independent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from aigc_jax.errors import InvalidInputError

Batch = dict[str, np.ndarray]


def local_batch_size(global_batch: int, process_count: int) -> int:
  if global_batch % process_count:
    raise InvalidInputError(f"Global batch {global_batch} does not split evenly over "
                            f"{process_count} processes; pick a multiple of {process_count}.")
  return global_batch // process_count


POISSON_STREAM = 5  # Random stream of Poisson sampling (see training_split.SUBSET_STREAM).


def poisson_batch(step: tf.Tensor, *, num_items: int, rate: float, capacity: int, seed: int,
                  process_index: int, process_count: int) -> tuple[tf.Tensor, tf.Tensor]:
  """This process's share of global batch `step` under Poisson sampling, for private
  training (train/dp.py): item ids (L,) int64 and a float32 mask (L,), L = capacity /
  process_count.

  Each of the `num_items` items is in the batch with probability `rate`, independently
  of the others and of other steps; if more than `capacity` are drawn, a uniformly random
  `capacity` of them are kept. The rest of the batch is padding (id 0, mask 0). A pure
  function of (seed, step), like every batch of the project.
  """
  local = local_batch_size(capacity, process_count)
  key = tf.stack([tf.constant(seed + (POISSON_STREAM << 32), tf.int64), step])
  drawn = tf.where(tf.random.stateless_uniform([num_items], seed=key) < rate)[:, 0]
  kept = tf.random.experimental.stateless_shuffle(drawn, seed=key + [0, 1])[:capacity]
  size = tf.shape(kept, out_type=tf.int64)[0]
  ids = tf.pad(kept, [[0, capacity - size]])
  mask = tf.cast(tf.range(capacity, dtype=tf.int64) < size, tf.float32)
  mine = slice(process_index * local, (process_index + 1) * local)
  return ids[mine], mask[mine]


def batches_by_step(batch_at: Callable[[tf.Tensor], dict[str, tf.Tensor]],
                    start_step: int) -> Iterator[Batch]:
  """Iterates batch_at(step) for step = start_step, start_step + 1, ... on one background
  thread, two batches ahead.

  One thread builds a batch in well under a step's time; more threads only take cores
  from the XLA step on small machines.
  """
  ds = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
  ds = ds.map(batch_at, num_parallel_calls=1, deterministic=True).prefetch(2)
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1
  options.autotune.enabled = False
  return ds.with_options(options).as_numpy_iterator()


def stack_batches(batches: Iterator[Batch], sizes: Iterator[int]) -> Iterator[Batch]:
  """Groups consecutive batches into chunks of the given sizes, stacked on a new axis 0.

  A chunk of k batches feeds one jitted call that scans k train steps, so per-call host
  work (dispatch, transfer) is paid once per k steps.
  """
  for size in sizes:
    group = [next(batches) for _ in range(size)]
    yield {key: np.stack([b[key] for b in group]) for key in group[0]}
