"""The training split a config asks for: as stored, dirtied on purpose, and/or cleaned.

Config keys (data/config.py):
- data.corrupt = "kind=rate,..." with data.corrupt_seed (and data.ood_source for
  out-of-distribution images): corrupt.py for images, corrupt_text.py for text;
- data.exclude = a .npy of example ids (text: line ids) to drop, as experiments.clean_data
  writes. Ids refer to the split *after* corruption, so a cleaning run on the dirty split
  and a training run with the same corruption settings drop the same examples.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from aigc_jax.data.corrupt import GroundTruth, corrupt
from aigc_jax.data.corrupt_text import corrupt_text, drop_lines
from aigc_jax.data.images import ImageData
from aigc_jax.data.sources import load_split
from aigc_jax.data.text import TextData
from aigc_jax.errors import InvalidInputError, MissingInputError

GROUND_TRUTH_FILE = "corruption.npz"


def corrupted_split(config: ml_collections.ConfigDict, data: ImageData | TextData
                    ) -> tuple[ImageData | TextData, GroundTruth | None]:
  """`data` with config.data.corrupt applied, and the ground truth (None if no corruption)."""
  spec, seed = config.data.corrupt, config.data.corrupt_seed
  if not spec:
    return data, None
  if isinstance(data, TextData):
    truth = corrupt_text(data.spec.decode(data.tokens), spec, seed)
    return TextData(data.spec.encode(truth.text), data.spec, data.block_size), truth
  ood_images = None
  if config.data.ood_source:
    ood_images = load_split(config.data.ood_source, "train",
                            data_dir=config.data.data_dir).images
  truth = corrupt(data, spec, seed, ood_images)
  return truth.data, truth


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
    log(f"Corrupted the split ({config.data.corrupt}, seed {config.data.corrupt_seed}): "
        f"{truth.summary()}.")
    if workdir is not None:
      os.makedirs(workdir, exist_ok=True)
      truth.save(os.path.join(workdir, GROUND_TRUTH_FILE))
  return data, truth


def training_split(config: ml_collections.ConfigDict, data: ImageData | TextData,
                   workdir: str | None = None, log=print) -> ImageData | TextData:
  """Corrupts, then excludes, as the config says; saves the ground truth in `workdir`."""
  data, _ = dirty_split(config, data, workdir, log)
  if config.data.exclude:
    ids = load_exclude(config.data.exclude, num_items(data))
    data = without(data, ids)
    log(f"Excluded {len(ids)} items listed in {config.data.exclude}; {data.describe()} left.")
  return data
