"""Image splits: what a model must know of them (ImageSpec), the split in host memory
(ImageData), and its training and evaluation batches.

Training batch `s` of a run is a pure function of (seed, s): example position
p = s * B + j maps to epoch p // N and to a stateless permutation of that epoch
(`index_shuffle`). So

* shuffling is an exact per-epoch permutation, the same for a given seed on any machine;
* resuming at step s starts the pipeline at s -- no replay of earlier batches;
* process k of P reads rows [k * B/P, (k+1) * B/P) of every global batch, so the global
  batch is identical whatever the number of processes, and processes never overlap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax.numpy as jnp
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aigc_jax.data.batching import Batch, batches_by_step, local_batch_size, poisson_batch
from aigc_jax.errors import InvalidInputError

# Random stream of the held-out draw; see corrupt.CORRUPTION_STREAM (1) and
# label_issues.FOLD_STREAM (2).
HELD_OUT_STREAM = 3


@dataclasses.dataclass(frozen=True)
class ImageSpec:
  """What an image model must know of its data; saved with every checkpoint."""

  image_shape: tuple[int, int, int]
  num_classes: int

  def to_json(self) -> dict:
    return {"kind": "image", "image_shape": list(self.image_shape),
            "num_classes": self.num_classes}


@dataclasses.dataclass(frozen=True)
class ImageData:
  """A labelled image split held in host memory, as it is stored (uint8, NHWC)."""

  images: np.ndarray  # (N, H, W, C) uint8
  labels: np.ndarray  # (N,) int32
  num_classes: int

  @property
  def spec(self) -> ImageSpec:
    return ImageSpec(image_shape=tuple(self.images.shape[1:]), num_classes=self.num_classes)

  def describe(self) -> str:
    return f"{len(self.images):,} images of {self.spec.image_shape}"

  def train_batches(self, **kwargs) -> Iterator[Batch]:
    return image_batches(self, **kwargs)

  def eval_batches(self, **kwargs) -> Iterator[Batch]:
    return eval_batches(self, **kwargs)


# Stored pixel p as a model sees it, p / 127.5 - 1 in float32: the one scaling of every
# training, evaluation and feature-network batch.
PIXEL_VALUES = np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1)


def model_inputs(batch: Batch) -> Batch:
  """A training batch as a model takes it: stored uint8 pixels become float32 in [-1, 1],
  the range tanh generators produce; batches without uint8 images pass unchanged.

  Called inside the jitted step (train/loop.py), so the host gathers, stacks and copies a
  quarter of the bytes that float pixels would take, on cores the step also needs. The
  pixels are looked up in a table of p / 127.5 - 1 rounded once in float32, because XLA
  rounds its fused form of that sum differently in the last bit for 111 of the 256 values:
  the table keeps every run's numbers what they were when tf.data scaled the images.
  """
  image = batch.get("image")
  if image is None or image.dtype != jnp.uint8:
    return batch
  return {**batch, "image": jnp.asarray(PIXEL_VALUES)[image]}


def shuffled_positions(step: tf.Tensor, *, global_batch: int, num_examples: int, seed: int,
                       process_index: int, process_count: int) -> tuple[tf.Tensor, tf.Tensor]:
  """This process's share of global batch `step`: each example's place in its epoch's
  permutation of 0..N-1, and the epoch."""
  local = local_batch_size(global_batch, process_count)
  positions = (step * global_batch + process_index * local
               + tf.range(local, dtype=tf.int64))  # (L,)
  epochs = positions // num_examples
  seeds = tf.stack([tf.fill([local], tf.constant(seed, tf.int64)), epochs,
                    tf.zeros([local], tf.int64)], axis=1)  # (L, 3): one per example
  # The raw op takes one seed per index (the public wrapper accepts a single seed only).
  shuffled = tf.raw_ops.RandomIndexShuffle(index=positions % num_examples, seed=seeds,
                                           max_index=tf.constant(num_examples - 1, tf.int64))
  return shuffled, epochs


BALANCE = ("none", "resample", "reweight")


def balanced_slots(labels: np.ndarray) -> dict[str, np.ndarray]:
  """An epoch of N slots shared equally by the classes present, for class-balanced
  resampling: slot j reads, in epoch e, example
  order[start[j] + (rank[j] + e * stride[j]) % size[j]].

  A class with fewer examples than its slots repeats them within the epoch; one with more
  reads the next `stride` of them each epoch, so over epochs it still shows all of them.
  Being a fixed table indexed by (slot, epoch), it keeps batches a pure function of
  (seed, step): resumable, and the same global batch on any topology.
  """
  classes, sizes = np.unique(labels, return_counts=True)
  slots = np.full(len(classes), len(labels) // len(classes))
  slots[:len(labels) % len(classes)] += 1
  order = np.concatenate([np.flatnonzero(labels == c) for c in classes])
  starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
  return {"order": order, "start": np.repeat(starts, slots),
          "rank": np.concatenate([np.arange(n) for n in slots]),
          "stride": np.repeat(slots, slots), "size": np.repeat(sizes, slots)}


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """(num_classes,) float32: N / (K * count) for each of the K classes present (0 for
  absent ones), so every class carries the same total weight and examples average 1."""
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  present = counts > 0
  weights = np.zeros(num_classes)
  weights[present] = len(labels) / (present.sum() * counts[present])
  return weights.astype(np.float32)


def image_batches(data: ImageData, *, global_batch: int, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1, balance: str = "none",
                  sampling_rate: float = 0.0) -> Iterator[Batch]:
  """Endless iterator of this process's batches, starting at global batch `start_step`.

  Yields {'image': uint8 (L, H, W, C) as stored, 'label': int32 (L,)} with
  L = global_batch / process_count; the train step scales the pixels (`model_inputs`).
  Batches are built on tf.data's own threads and prefetched, so the training step never
  waits on them. `balance` against unequal classes:
  'resample' gives every class an equal share of each epoch (`balanced_slots`); 'reweight'
  adds 'weight' (L,), the example's `class_weights`, for the losses to scale by.

  `sampling_rate` > 0: Poisson sampling for private training (batching.poisson_batch),
  `global_batch` being the capacity; batches carry 'mask' (L,), 0 for padding rows.
  """
  if balance not in BALANCE:
    raise InvalidInputError(f"Unknown data.balance '{balance}'; choose from {BALANCE}.")
  num_examples = len(data.images)
  if num_examples < global_batch and not sampling_rate:
    raise InvalidInputError(f"The split has {num_examples} examples, fewer than one global "
                            f"batch of {global_batch}; lower --config.batch_size.")
  images = tf.constant(data.images)
  labels = tf.constant(data.labels)
  slots = ({k: tf.constant(v, tf.int64) for k, v in balanced_slots(data.labels).items()}
           if balance == "resample" else None)
  weights = tf.constant(class_weights(data.labels, data.num_classes))

  def poisson_batch_at(step):
    idx, mask = poisson_batch(step, num_items=num_examples, rate=sampling_rate,
                              capacity=global_batch, seed=seed, process_index=process_index,
                              process_count=process_count)
    return {"image": tf.gather(images, idx), "label": tf.gather(labels, idx), "mask": mask}

  def batch_at(step):
    idx, epochs = shuffled_positions(step, global_batch=global_batch,
                                     num_examples=num_examples, seed=seed,
                                     process_index=process_index, process_count=process_count)
    if slots is not None:
      at = lambda key: tf.gather(slots[key], idx)
      idx = tf.gather(slots["order"],
                      at("start") + (at("rank") + epochs * at("stride")) % at("size"))
    batch = {"image": tf.gather(images, idx), "label": tf.gather(labels, idx)}
    if balance == "reweight":
      batch["weight"] = tf.gather(weights, batch["label"])
    return batch

  return batches_by_step(poisson_batch_at if sampling_rate else batch_at, start_step)

def eval_batches(data: ImageData, *, global_batch: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[Batch]:
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
    yield {"image": PIXEL_VALUES[data.images[idx]],
           "label": data.labels[idx], "mask": mask}


def load_images(builder: tfds.core.DatasetBuilder, name: str, split: str) -> ImageData:
  """A prepared TFDS image dataset's split, whole, in host memory."""
  if split not in builder.info.splits:
    raise InvalidInputError(f"Dataset '{name}' has no split '{split}'; it has "
                            f"{sorted(builder.info.splits)}.")
  arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  label_feature = builder.info.features["label"] if "label" in builder.info.features else None
  num_examples = len(arrays["image"])
  labels = arrays["label"] if label_feature is not None else np.zeros(num_examples)
  num_classes = label_feature.num_classes if label_feature is not None else 1
  return ImageData(images=np.asarray(arrays["image"], np.uint8),
                   labels=np.asarray(labels, np.int32), num_classes=num_classes)


def split_off(data: ImageData, fraction: float, seed: int) -> tuple[ImageData, ImageData]:
  """(the rest, a seeded `fraction` of the examples): a held-out split for a dataset
  that has none. The same (fraction, seed) always holds out the same examples."""
  order = np.random.default_rng([HELD_OUT_STREAM, seed]).permutation(len(data.images))
  cut = int(round(fraction * len(data.images)))
  if not 0 < cut < len(data.images):
    raise InvalidInputError(f"data.eval_fraction={fraction} of {len(data.images)} examples "
                            "holds out none or all of them; pick a fraction in (0, 1).")
  held, kept = np.sort(order[:cut]), np.sort(order[cut:])
  return (ImageData(data.images[kept], data.labels[kept], data.num_classes),
          ImageData(data.images[held], data.labels[held], data.num_classes))
