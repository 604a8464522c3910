"""The training split a config asks for: as stored, dirtied on purpose, and/or cleaned.

Config keys (data/config.py), applied in this order:
- data.label_file = a .npy of int labels replacing the split's own (images), e.g. a
  relabelled or crowd-labelled version; its ground truth of label errors is every example
  whose file label differs from the dataset's;
- data.corrupt = "kind=rate,..." with data.corrupt_seed (and data.ood_source for
  out-of-distribution images): corrupt.py for images, corrupt_text.py for text;
- data.exclude = a .npy of example ids (text: line ids) to drop, as experiments.clean_data
  writes. Ids refer to the split *after* corruption, so a cleaning run on the dirty split
  and a training run with the same corruption settings drop the same examples;
- data.subset = train on a seeded subset of what is left;
- data.cluster_labels = K > 0: the labels of what a GAN trains on become K k-means
  clusters of its images (clusters.py, self-conditioning); or data.clusters_per_class =
  M > 0: each class's label becomes one of M k-means clusters of that class's images.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np
import tensorflow as tf

from aigc_jax.data.clusters import clustered, fine_labels
from aigc_jax.data.corrupt import CLEAN, GroundTruth, corrupt
from aigc_jax.data.corrupt_text import corrupt_text, drop_lines
from aigc_jax.data.images import ImageData
from aigc_jax.data.sources import config_split, load_split
from aigc_jax.data.text import TextData
from aigc_jax.errors import InvalidInputError, MissingInputError

GROUND_TRUTH_FILE = "corruption.npz"
MEMBERS_FILE = "members.npy"  # Ids of the training items a data.subset run saw.
SUBSET_STREAM = 4  # Random stream of the subset draw (see images.HELD_OUT_STREAM, 3).
LABEL_FILE = "label_file"  # The ground-truth kind of an example the label file relabels.


def load_label_file(path: str, data: ImageData | TextData) -> np.ndarray:
  """The labels in `path`, checked against the split they are meant to replace."""
  if isinstance(data, TextData):
    raise InvalidInputError("data.label_file replaces image labels; a text split has none.")
  if not os.path.isfile(path):
    raise MissingInputError(f"data.label_file={path} does not exist; give a .npy of int "
                            f"labels, one per training example ({len(data.labels)}).")
  labels = np.load(path)
  if not np.issubdtype(labels.dtype, np.integer):
    raise InvalidInputError(f"{path} holds {labels.dtype}; a label file holds integer class "
                            "ids (save it with .astype(np.int64)).")
  if labels.shape != data.labels.shape:
    raise InvalidInputError(f"{path} holds {labels.shape} labels, but the split has "
                            f"{data.labels.shape}: one label per training example, in order.")
  outside = np.flatnonzero((labels < 0) | (labels >= data.num_classes))
  if len(outside):
    raise InvalidInputError(f"{path} has {len(outside)} labels outside [0, {data.num_classes}),"
                            f" e.g. {labels[outside[0]]} at example {outside[0]}.")
  return labels.astype(np.int32)


def relabelled(data: ImageData, labels: np.ndarray) -> tuple[ImageData, GroundTruth]:
  """`data` with `labels`; the ground truth marks every example whose label changed."""
  changed = (labels != data.labels).astype(np.int64)
  truth = GroundTruth(kinds=(CLEAN, LABEL_FILE), kind=changed,
                      source=np.full(len(labels), -1, np.int64))
  return ImageData(data.images, labels, data.num_classes), truth


def overlay(base: GroundTruth | None, top: GroundTruth | None) -> GroundTruth | None:
  """One ground truth from two applied in turn: `top`'s kind where it changed an item,
  `base`'s elsewhere."""
  if base is None or top is None:
    return top if base is None else base
  kept = np.setdiff1d(np.arange(len(base.kind)), top.removed)  # What `top` did not drop.
  kind = np.where(top.kind > 0, top.kind + len(base.kinds) - 1, base.kind[kept])
  return GroundTruth(kinds=base.kinds + top.kinds[1:], kind=kind,
                     source=np.where(top.kind > 0, top.source, base.source[kept]),
                     removed=top.removed)


def shaped_like(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
  """Foreign images in the split's image shape: resized bilinearly to its height and
  width, grey repeated into RGB, so grey digits can be the foreign source of a colour
  dataset (MNIST digits as out-of-distribution CIFAR-10 images). RGB into grey is
  refused: it would hide the colour that makes them foreign."""
  height, width, channels = shape
  if images.shape[1:] == tuple(shape):
    return images
  if images.shape[-1] not in (1, channels):
    raise InvalidInputError(f"Out-of-distribution images have {images.shape[-1]} channels, "
                            f"the data {channels}; pick an ood_source with {channels} or 1.")
  if images.shape[1:3] != (height, width):
    resized = tf.image.resize(images, (height, width), method="bilinear")
    images = np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)
  return np.repeat(images, channels // images.shape[-1], axis=-1)


def corrupted_split(config: ml_collections.ConfigDict, data: ImageData | TextData
                    ) -> tuple[ImageData | TextData, GroundTruth | None]:
  """`data` relabelled by config.data.label_file and with config.data.corrupt applied, and
  the ground truth of both (None if neither is set)."""
  spec, seed = config.data.corrupt, config.data.corrupt_seed
  file_truth = None
  if config.data.label_file:
    data, file_truth = relabelled(data, load_label_file(config.data.label_file, data))
  if not spec:
    return data, file_truth
  if isinstance(data, TextData):
    truth = corrupt_text(data.spec.decode(data.tokens), spec, seed)
    return TextData(data.spec.encode(truth.text), data.spec, data.block_size), truth
  ood_images = None
  if config.data.ood_source:
    ood_images = shaped_like(load_split(config.data.ood_source, "train",
                                        data_dir=config.data.data_dir).images,
                             data.images.shape[1:])
  corrupted = corrupt(data, spec, seed, ood_images)
  return corrupted.data, overlay(file_truth, corrupted)


def load_exclude(path: str, num_items: int) -> np.ndarray:
  """Ids from an exclude file, checked against the split they are meant for."""
  if not os.path.isfile(path):
    raise MissingInputError(f"data.exclude={path} does not exist; give the exclude.npy "
                            "that python -m experiments.clean_data wrote.")
  ids = np.load(path)
  if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
    raise InvalidInputError(f"{path} holds {ids.dtype} of shape {ids.shape}; an exclude file is a "
                            "1-D array of integer example ids.")
  if len(ids) and (ids.min() < 0 or ids.max() >= num_items):
    raise InvalidInputError(f"{path} names ids up to {ids.max()}, but the split has {num_items} "
                            "items: it was written for another dataset or corruption setting.")
  return ids


def without(data: ImageData | TextData, ids: np.ndarray) -> ImageData | TextData:
  """`data` minus the given examples (images) or lines (text)."""
  if isinstance(data, TextData):
    text = drop_lines(data.spec.decode(data.tokens), ids)
    return TextData(data.spec.encode(text), data.spec, data.block_size)
  keep = np.ones(len(data.images), bool)
  keep[ids] = False
  return ImageData(data.images[keep], data.labels[keep], data.num_classes)


def num_items(data: ImageData | TextData) -> int:
  """How many ids the split has: examples, or lines for text."""
  if isinstance(data, TextData):
    return data.spec.decode(data.tokens).count("\n") + 1
  return len(data.images)


def dirty_split(config: ml_collections.ConfigDict, data: ImageData | TextData,
                workdir: str | None = None, log=print
                ) -> tuple[ImageData | TextData, GroundTruth | None]:
  """corrupted_split, logged, with the ground truth saved in `workdir` (when given)."""
  data, truth = corrupted_split(config, data)
  if truth is not None:
    changes = [f"labels from {config.data.label_file}"] if config.data.label_file else []
    if config.data.corrupt:
      changes.append(f"corrupted ({config.data.corrupt}, seed {config.data.corrupt_seed})")
    log(f"Training split with {' and '.join(changes)}: {truth.summary()}.")
    if workdir is not None:
      os.makedirs(workdir, exist_ok=True)
      truth.save(os.path.join(workdir, GROUND_TRUTH_FILE))
  return data, truth


def cluster_labels(config: ml_collections.ConfigDict) -> int:
  """How many k-means clusters replace the run's labels; 0: it trains on its own labels.
  (.get: runs saved before the key existed.)"""
  return config.data.get("cluster_labels", 0)


def clusters_per_class(config: ml_collections.ConfigDict) -> int:
  """Into how many k-means clusters each class's label is refined; 0: none."""
  return config.data.get("clusters_per_class", 0)


def class_shares(config: ml_collections.ConfigDict, stored: ImageData | None = None,
                 log=print, clusters: bool = True) -> np.ndarray:
  """Each class's share of the training split `config` trains on, as corrupted and
  cleaned: what a run was shown, for its per-class report and data-prior sampling.
  `stored`: that split as stored, if the caller has it loaded already. For a run on
  cluster or fine labels, their shares, or the dataset's classes' if not `clusters`."""
  if stored is None:
    stored = config_split(config, config.data.split)
  if not clusters and (cluster_labels(config) or clusters_per_class(config)):
    config = config.copy_and_resolve_references()
    config.data.cluster_labels = config.data.clusters_per_class = 0
  data = training_split(config, stored, log=log)
  return np.bincount(data.labels, minlength=data.num_classes) / len(data.labels)


def subset_members(num: int, size: int, seed: int) -> np.ndarray:
  """Sorted ids of a seeded subset of `size` of `num` items: the members of a run trained
  on `data.subset`, which a membership-inference audit tells from the rest."""
  if size > num:
    raise InvalidInputError(f"data.subset={size} asks for more items than the split has "
                            f"({num}); give at most {num}, or 0 for all.")
  return np.sort(np.random.default_rng([SUBSET_STREAM, seed]).permutation(num)[:size])


def prepared_split(config: ml_collections.ConfigDict, data: ImageData | TextData,
                   workdir: str | None = None, log=print) -> ImageData | TextData:
  """`data` corrupted and with `data.exclude` dropped, as the config says (ground truth
  saved in `workdir`): the pool a `data.subset` is drawn from, and the ids its
  members.npy refers to."""
  data, _ = dirty_split(config, data, workdir, log)
  if config.data.exclude:
    ids = load_exclude(config.data.exclude, num_items(data))
    data = without(data, ids)
    log(f"Excluded {len(ids)} items listed in {config.data.exclude}; {data.describe()} left.")
  return data


def training_split(config: ml_collections.ConfigDict, data: ImageData | TextData,
                   workdir: str | None = None, log=print) -> ImageData | TextData:
  """`prepared_split`, then only `data.subset` of it when set, then labelled by k-means
  clusters when `data.cluster_labels` or `data.clusters_per_class` is; saves the ground
  truth and the subset's member ids (MEMBERS_FILE) in `workdir`."""
  data = prepared_split(config, data, workdir, log)
  size = config.data.get("subset", 0)  # .get: runs saved before the key existed.
  if size:
    total = num_items(data)
    members = subset_members(total, size, config.data.subset_seed)
    data = without(data, np.setdiff1d(np.arange(total), members))
    log(f"Training on a subset of {size} of {total} items (seed "
        f"{config.data.subset_seed}): {data.describe()}.")
    if workdir is not None:
      os.makedirs(workdir, exist_ok=True)
      np.save(os.path.join(workdir, MEMBERS_FILE), members)
  return relabelled_by_clusters(config, data, log)


def relabelled_by_clusters(config: ml_collections.ConfigDict, data: ImageData | TextData,
                           log=print) -> ImageData | TextData:
  """`data` labelled by k-means clusters as data.cluster_labels or
  data.clusters_per_class asks (clusters.py); as it is if neither is set."""
  keys = {"cluster_labels": cluster_labels(config),
          "clusters_per_class": clusters_per_class(config)}
  asked = {key: value for key, value in keys.items() if value}
  if not asked:
    return data
  named = " and ".join(f"data.{key}={value}" for key, value in asked.items())
  if len(asked) > 1:
    raise InvalidInputError(f"{named}: pick one (clusters of all images, or within classes).")
  if isinstance(data, TextData) or config.get("family") != "gan":
    raise InvalidInputError(
        f"{named} relabels the images a GAN trains on; this is a {config.get('family')} run "
        f"on {config.data.name}, whose held-out evaluation would still read the dataset's "
        f"own labels. Set --config.data.{next(iter(asked))}=0.")
  if keys["cluster_labels"]:
    return clustered(data, keys["cluster_labels"], log=log)
  return fine_labels(data, keys["clusters_per_class"], log=log)
