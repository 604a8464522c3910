"""tf.data input pipeline for in-memory image splits.

Batch `s` of a run is a pure function of (seed, s): example position p = s * B + j maps to
epoch p // N and to a stateless permutation of that epoch (`index_shuffle`). So

* shuffling is an exact per-epoch permutation, the same for a given seed on any machine;
* resuming at step s starts the pipeline at s -- no replay of earlier batches;
* process k of P reads rows [k * B/P, (k+1) * B/P) of every global batch, so the global
  batch is identical whatever the number of processes, and processes never overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
  from aigc_jax.data.sources import ImageData


def scale_images(images_uint8: tf.Tensor) -> tf.Tensor:
  """uint8 [0, 255] -> float32 [-1, 1], the range tanh generators produce."""
  return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def local_batch_size(global_batch: int, process_count: int) -> int:
  if global_batch % process_count:
    raise ValueError(f"Global batch {global_batch} does not split evenly over "
                     f"{process_count} processes; pick a multiple of {process_count}.")
  return global_batch // process_count


def example_indices(step: tf.Tensor, *, global_batch: int, num_examples: int, seed: int,
                    process_index: int, process_count: int) -> tf.Tensor:
  """Dataset indices of this process's share of global batch `step`."""
  local = local_batch_size(global_batch, process_count)
  positions = (step * global_batch + process_index * local
               + tf.range(local, dtype=tf.int64))  # (L,)
  epochs = positions // num_examples
  seeds = tf.stack([tf.fill([local], tf.constant(seed, tf.int64)), epochs,
                    tf.zeros([local], tf.int64)], axis=1)  # (L, 3): one per example
  # The raw op takes one seed per index (the public wrapper accepts a single seed only).
  return tf.raw_ops.RandomIndexShuffle(index=positions % num_examples, seed=seeds,
                                       max_index=tf.constant(num_examples - 1, tf.int64))


def image_batches(data: "ImageData", *, global_batch: int, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1
                  ) -> Iterator[dict[str, np.ndarray]]:
  """Endless iterator of this process's batches, starting at global batch `start_step`.

  Yields {'image': float32 (L, H, W, C) in [-1, 1], 'label': int32 (L,)} with
  L = global_batch / process_count. Batches are built on tf.data's own threads and
  prefetched, so the training step never waits on them.
  """
  num_examples = len(data.images)
  if num_examples < global_batch:
    raise ValueError(f"The split has {num_examples} examples, fewer than one global "
                     f"batch of {global_batch}; lower --config.batch_size.")
  images = tf.constant(data.images)
  labels = tf.constant(data.labels)

  def batch_at(step):
    idx = example_indices(step, global_batch=global_batch, num_examples=num_examples,
                          seed=seed, process_index=process_index,
                          process_count=process_count)
    return {"image": scale_images(tf.gather(images, idx)), "label": tf.gather(labels, idx)}

  return batches_by_step(batch_at, start_step)


def batches_by_step(batch_at, start_step: int) -> Iterator[dict[str, np.ndarray]]:
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


def eval_batches(data: "ImageData", *, global_batch: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """One pass over the whole split in order, for evaluation.

  The last batch is padded to full size (so the eval step compiles once) and every batch
  carries `mask` (1.0 for real examples, 0.0 for padding): sums over `mask` count each
  example exactly once, whatever the batch and process counts.
  """
  local = local_batch_size(global_batch, process_count)
  num_examples = len(data.images)
  for start in range(0, num_examples, global_batch):
    idx = start + process_index * local + np.arange(local)
    mask = (idx < num_examples).astype(np.float32)
    idx = np.minimum(idx, num_examples - 1)
    yield {"image": data.images[idx].astype(np.float32) / 127.5 - 1.0,
           "label": data.labels[idx], "mask": mask}


def stack_batches(batches: Iterator[dict[str, np.ndarray]], sizes: Iterator[int]
                  ) -> Iterator[dict[str, np.ndarray]]:
  """Groups consecutive batches into chunks of the given sizes, stacked on a new axis 0.

  A chunk of k batches feeds one jitted call that scans k train steps, so per-call host
  work (dispatch, transfer) is paid once per k steps.
  """
  for size in sizes:
    group = [next(batches) for _ in range(size)]
    yield {key: np.stack([b[key] for b in group]) for key in group[0]}
