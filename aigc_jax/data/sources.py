"""Where training data comes from: TFDS builders, online or from a folder of raw files.

TFDS owns the download and the on-disk format. This module only decides *how* a builder
gets prepared: from `TFDS_DATA_DIR` if it already is, from a folder of the dataset's
original files (`manual_dir`) if one is given, else from the network -- and when none of
these can work it fails in seconds with the folder and the file names it needs, instead of
letting TFDS retry a download for minutes on an offline machine. In a multi-process run
process 0 prepares a dataset before the others read it.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Callable
from typing import TypeVar

import jax
import ml_collections
import tensorflow_datasets as tfds
from absl import logging
from jax.experimental import multihost_utils
from tensorflow_datasets.core.download import download_manager

from aigc_jax.data.array_archives import ARCHIVES, archive_path, prepare_from_archive
from aigc_jax.data.image_folder import load_image_folder
from aigc_jax.data.images import ImageData, ImageSpec, load_images, split_off
from aigc_jax.data.text import TextData, TextSpec, load_text
from aigc_jax.data.text_file import load_text_file
from aigc_jax.errors import InvalidInputError, UserError

T = TypeVar("T")

RAW_DATA_ENV = "AIGC_RAW_DATA_DIR"
IMAGE_FOLDER = "image_folder"
TEXT_FILE = "text_file"


class DataUnavailableError(UserError, RuntimeError):
  """The dataset is neither prepared, nor in a raw-file folder, nor downloadable."""


def spec_from_json(d: dict) -> ImageSpec | TextSpec:
  """The spec a checkpoint saved (`to_json`), image or text."""
  if d.get("kind", "image") == "text":
    return TextSpec(vocab=d["vocab"])
  return ImageSpec(image_shape=tuple(d["image_shape"]), num_classes=int(d["num_classes"]))


def raw_files_dir(name: str, manual_dir: str | None) -> str | None:
  """The folder holding `name`'s original files, from the config or `$AIGC_RAW_DATA_DIR`.

  `manual_dir` (config `data.manual_dir`) names the dataset's own folder; the environment
  variable names a root with one sub-folder per TFDS name, like `../shared/data/`.
  """
  if manual_dir:
    return os.path.expanduser(manual_dir)
  root = os.environ.get(RAW_DATA_ENV)
  return os.path.join(os.path.expanduser(root), name) if root else None


def prepared_builder(name: str, data_dir: str | None = None,
                     manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Returns the TFDS builder for `name`, preparing it first if needed."""
  builder = tfds.builder(name, data_dir=data_dir)
  if builder.is_prepared():
    return builder
  expected = sorted({info.filename for info in (builder.url_infos or {}).values()
                     if info.filename})
  raw_dir = raw_files_dir(name, manual_dir)
  archive = archive_path(name, raw_dir)
  if archive is not None:
    logging.info("Preparing dataset '%s' in %s from %s.", name, builder.data_dir, archive)
    return prepare_from_archive(name, archive, data_dir)
  if raw_dir is not None:
    missing = [f for f in expected if not os.path.exists(os.path.join(raw_dir, f))]
    if missing or not os.path.isdir(raw_dir):
      if name in ARCHIVES:  # Either the archive or the original files will do.
        expected = [f"{ARCHIVES[name]} (or {', '.join(expected)})"]
      raise DataUnavailableError(
          f"Dataset '{name}' is not prepared in {builder.data_dir} and the raw-file folder "
          f"{raw_dir} lacks {missing or expected}. Put the dataset's original files "
          f"({', '.join(expected)}) there, or point ${RAW_DATA_ENV} (one sub-folder per "
          "dataset) or --config.data.manual_dir at a folder that has them.")
    download_config = tfds.download.DownloadConfig(manual_dir=raw_dir)
  else:
    unreachable = [host for host in _download_hosts(builder) if not _reachable(host)]
    if unreachable:
      raise DataUnavailableError(
          f"Dataset '{name}' is not prepared in {builder.data_dir} and its download "
          f"host(s) {unreachable} cannot be reached. Offline, set ${RAW_DATA_ENV} to a "
          f"folder with a '{name}/' sub-folder holding {', '.join(expected) or 'its files'}"
          ", or set --config.data.manual_dir.")
    download_config = None
  logging.info("Preparing dataset '%s' in %s.", name, builder.data_dir)
  tfds.disable_progress_bar()
  # TFDS extracts files under download_dir by file name alone, and MNIST and Fashion-MNIST
  # share their file names: one shared download_dir would silently build Fashion-MNIST from
  # MNIST's extracted files. A folder per dataset keeps them apart.
  download_dir = os.path.join(os.path.dirname(os.path.dirname(builder.data_dir)),
                              "downloads", name)
  try:
    builder.download_and_prepare(download_dir=download_dir, download_config=download_config)
  except download_manager.NonMatchingChecksumError as error:
    raise DataUnavailableError(
        f"A file of dataset '{name}' is not the original (its size or SHA-256 differs from "
        f"the one TFDS records): {str(error).splitlines()[0]} Replace it with the original "
        "download (checksums: TFDS's record, or SOURCES.md beside ../shared/data), then "
        "rerun; nothing was prepared.") from None
  return builder


def _download_hosts(builder: tfds.core.DatasetBuilder) -> list[str]:
  return sorted({urllib.parse.urlparse(url).hostname for url in (builder.url_infos or {})})


def _reachable(host: str, timeout_s: float = 3.0) -> bool:
  try:
    socket.create_connection((host, 443), timeout=timeout_s).close()
    return True
  except OSError:
    return False


def load_split(name: str, split: str = "train", *, data_dir: str | None = None,
               manual_dir: str | None = None, image_folder: str | None = None,
               block_size: int | None = None, image_size: int | None = None,
               channels: int | None = None, text_file: str | None = None,
               eval_fraction: float = 0.0, split_seed: int = 0) -> ImageData | TextData:
  """Loads a whole split into host memory: images (+ labels) or a text as tokens.

  These datasets (MNIST-family, CIFAR-10, a user's folder, Tiny Shakespeare) fit in
  memory, which lets the input pipeline address any example by index: shuffling is then
  exact, resuming is O(1), and the global batch does not depend on how many processes
  read it. Text needs the model's `block_size` to cut windows. A user's image folder is
  checked file by file, and resized (`image_size`) or converted (`channels`) only when
  asked (image_folder.py); a user's text file is split by lines (text_file.py). In a
  multi-process run, process 0 prepares the dataset before the others read it.
  """
  if name == IMAGE_FOLDER:
    return load_image_folder(image_folder, split, image_size=image_size, channels=channels)
  if name == TEXT_FILE:
    if block_size is None:
      raise InvalidInputError("Dataset 'text_file' is text; its config needs a `block_size`.")
    return load_text_file(text_file, split, block_size=block_size,
                          eval_fraction=eval_fraction, seed=split_seed)
  return chief_first(lambda: _load_split(name, split, data_dir, manual_dir, block_size),
                     name=f"load_split:{name}:{split}")


HELD_OUT = "held_out"  # The split data.eval_fraction holds out of data.split.


def config_split(config: ml_collections.ConfigDict, split: str) -> ImageData | TextData:
  """`load_split` of the dataset that `config.data` names (and `config.block_size`, text).

  With `data.eval_fraction` > 0, a seeded share of `data.split` is held out: it is the
  split named "held_out", and `data.split` is the rest -- for datasets (a user's image
  folder, say) that have no test split of their own.
  """
  data = config.data
  if split == HELD_OUT and not data.eval_fraction:
    raise InvalidInputError(f"Split '{HELD_OUT}' is the share of data.split that "
                            "--config.data.eval_fraction holds out; set that fraction too.")
  name = data.split if split == HELD_OUT else split
  loaded = load_split(data.name, name, data_dir=data.data_dir, manual_dir=data.manual_dir,
                      image_folder=data.image_folder, block_size=config.get("block_size"),
                      image_size=data.image_size, channels=data.channels,
                      text_file=data.text_file, eval_fraction=data.eval_fraction,
                      split_seed=data.split_seed)
  if not data.eval_fraction or name != data.split or data.name == TEXT_FILE:
    return loaded
  if not isinstance(loaded, ImageData):
    raise InvalidInputError("data.eval_fraction holds out images; text datasets come with "
                            "their own validation and test splits.")
  rest, held_out = split_off(loaded, data.eval_fraction, data.split_seed)
  return held_out if split == HELD_OUT else rest


def describe_split(data: ml_collections.ConfigDict, split: str) -> str:
  """How a report names a split: as is, or where a held-out one came from."""
  if split != HELD_OUT:
    return split
  return (f"{HELD_OUT}: {data.eval_fraction:.0%} of '{data.split}' held out of training "
          f"(data.eval_fraction, seed {data.split_seed})")


def chief_first(fn: Callable[[], T], name: str) -> T:
  """Runs `fn` on process 0, then on the others, e.g. to prepare a dataset once.

  Without the ordering, every process of a fresh run would build the same TFDS files in
  the same folder at once.
  """
  is_chief = jax.process_index() == 0
  if is_chief:
    result = fn()
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"chief_first:{name}")
  if not is_chief:
    result = fn()
  return result


def _load_split(name: str, split: str, data_dir: str | None, manual_dir: str | None,
                block_size: int | None) -> ImageData | TextData:
  builder = prepared_builder(name, data_dir, manual_dir)
  features = builder.info.features
  if "text" in features and "image" not in features:
    if block_size is None:
      raise InvalidInputError(f"Dataset '{name}' is text; its config needs a `block_size`.")
    return load_text(name, split, block_size=block_size, builder=builder)
  if "image" not in features:
    raise InvalidInputError(f"Dataset '{name}' has neither an 'image' nor a 'text' feature; "
                            "pick an image or text dataset for --config.data.name.")
  return load_images(builder, name, split)

