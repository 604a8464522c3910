"""Datasets whose offline copy is a NumPy archive, prepared into TFDS's own format.

TFDS's `cifar10` builder only prepares from the official binary tarball, whose checksum it
records. An offline copy may instead be a pixel-exact `cifar10.npz` (uint8 HWC `x_train`,
`y_train`, `x_test`, `y_test`, `label_names`; ../shared/data/SOURCES.md). This module
writes those arrays through the same builder class, so the prepared dataset has TFDS's
name, version, features and files, and every later load -- online or offline -- reads it
exactly like a TFDS download. The arrays' bytes are checked against known md5s first: a
wrong archive is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import cifar

from aigc_jax.errors import InvalidInputError

# Archive file name per TFDS name, and the md5 of each array's bytes
# (`hashlib.md5(a.tobytes())`), as SOURCES.md beside ../shared/data records them.
ARCHIVES: dict[str, str] = {"cifar10": "cifar10.npz"}
ARRAY_MD5: dict[str, dict[str, str]] = {
    "cifar10": {"x_train": "17e2cb5a4119d89a4a13e02b91701bff",
                "y_train": "69c5f3349be54915edfca558b72ad888",
                "x_test": "6d2714505047e13831cd876923568712",
                "y_test": "251f18ce75337ae9ca5d0dbd7ea62cf4"},
}
SPLIT_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}


def archive_path(name: str, raw_dir: str | None) -> str | None:
  """The archive `name` can be prepared from in `raw_dir` (the folder, or the file
  itself), or None when there is none."""
  if raw_dir is None or name not in ARCHIVES:
    return None
  path = raw_dir if raw_dir.endswith(".npz") else os.path.join(raw_dir, ARCHIVES[name])
  return path if os.path.isfile(path) else None


def load_checked_arrays(path: str, expected_md5: Mapping[str, str]) -> dict[str, np.ndarray]:
  """The archive's arrays, after checking each one's bytes against `expected_md5`."""
  with np.load(path, allow_pickle=False) as archive:
    missing = sorted(set(expected_md5) - set(archive.files))
    if missing:
      raise InvalidInputError(f"{path} lacks the arrays {missing}; it holds "
                              f"{sorted(archive.files)}. Use the archive SOURCES.md describes.")
    arrays = {key: archive[key] for key in archive.files}
  wrong = [key for key, md5 in expected_md5.items()
           if hashlib.md5(arrays[key].tobytes()).hexdigest() != md5]
  if wrong:
    raise InvalidInputError(
        f"The arrays {wrong} of {path} are not the original bytes (their md5 differs from "
        "the one SOURCES.md records). Replace the file with the original archive; nothing "
        "was prepared.")
  for x_key, y_key in SPLIT_KEYS.values():
    x, y = arrays[x_key], arrays[y_key]
    if x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(y):
      raise InvalidInputError(f"{path}: {x_key} must be uint8 (N, H, W, C) with one {y_key} "
                              f"label per image; it is {x.dtype} {x.shape}, labels {y.shape}.")
  return arrays


class Cifar10FromArrays(cifar.Cifar10, skip_registration=True):
  """TFDS's `cifar10` (same name, version and features), generated from the arrays."""

  name = "cifar10"

  def __init__(self, *, arrays: Mapping[str, np.ndarray], **kwargs):
    self._arrays = arrays
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the arrays are in memory.
    if "label_names" in self._arrays:
      self.info.features["label"].names = [str(n) for n in self._arrays["label_names"]]
    return {split: self._examples(split, *keys) for split, keys in SPLIT_KEYS.items()}

  def _examples(self, split: str, x_key: str, y_key: str):
    # Ids as TFDS's own builder writes them ("train_00000"), in the canonical order.
    for index, (image, label) in enumerate(zip(self._arrays[x_key], self._arrays[y_key])):
      yield index, {"id": f"{split}_{index:05d}", "image": image, "label": int(label)}


ARCHIVE_BUILDERS = {"cifar10": Cifar10FromArrays}


def prepare_from_archive(name: str, path: str, data_dir: str | None
                         ) -> tfds.core.DatasetBuilder:
  """Prepares TFDS dataset `name` in `data_dir` from its archive at `path`, checked
  against ARRAY_MD5[name]."""
  arrays = load_checked_arrays(path, ARRAY_MD5[name])
  builder = ARCHIVE_BUILDERS[name](arrays=arrays, data_dir=data_dir)
  tfds.disable_progress_bar()
  builder.download_and_prepare()
  return tfds.builder(name, data_dir=data_dir)
