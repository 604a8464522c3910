"""Data sources: offline preparation from raw files, clear failures, image folders."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from aigc_jax.data import array_archives, sources
from aigc_jax.data.sources import DataUnavailableError, load_split, prepared_builder
from aigc_jax.errors import InvalidInputError, MissingInputError
from tests.conftest import write_cifar10_archive, write_image_folder


def test_missing_raw_files_name_the_folder_and_files(tmp_path):
  empty = tmp_path / "raw" / "mnist"
  empty.mkdir(parents=True)
  with pytest.raises(DataUnavailableError) as error:
    prepared_builder("mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(empty))
  message = str(error.value)
  assert str(empty) in message and "train-images-idx3-ubyte.gz" in message


def test_a_damaged_raw_file_is_named_with_what_to_do(tmp_path, raw_data_dir):
  damaged = tmp_path / "raw" / "mnist"
  damaged.mkdir(parents=True)
  for name in os.listdir(os.path.join(raw_data_dir, "mnist")):
    shutil.copy(os.path.join(raw_data_dir, "mnist", name), damaged / name)
  labels = damaged / "train-labels-idx1-ubyte.gz"
  labels.write_bytes(labels.read_bytes()[:1000])  # A download cut short.
  with pytest.raises(DataUnavailableError) as error:
    prepared_builder("mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(damaged))
  message = str(error.value)
  assert "train-labels-idx1-ubyte.gz" in message and "Replace it with the original" in message


def test_raw_root_from_environment_selects_the_dataset_subfolder(monkeypatch, tmp_path):
  monkeypatch.setenv(sources.RAW_DATA_ENV, str(tmp_path))
  assert sources.raw_files_dir("fashion_mnist", None) == str(tmp_path / "fashion_mnist")
  assert sources.raw_files_dir("mnist", "/explicit") == "/explicit"


def test_offline_without_raw_files_fails_fast(monkeypatch, tmp_path):
  monkeypatch.delenv(sources.RAW_DATA_ENV, raising=False)
  monkeypatch.setattr(sources, "_reachable", lambda host: False)  # An offline machine.
  with pytest.raises(DataUnavailableError, match=sources.RAW_DATA_ENV):
    prepared_builder("mnist", data_dir=str(tmp_path / "tfds"))


def test_real_mnist_prepares_offline_from_raw_files(mnist_tfds_dir):
  data = load_split("mnist", "test", data_dir=mnist_tfds_dir)
  assert data.images.shape == (10_000, 28, 28, 1) and data.images.dtype == np.uint8
  assert data.num_classes == 10 and sorted(set(data.labels)) == list(range(10))


def test_fashion_mnist_beside_mnist_is_built_from_its_own_files(mnist_tfds_dir, raw_data_dir):
  """Both ship files of the same names; TFDS must not reuse MNIST's extracted copies."""
  fashion = load_split("fashion_mnist", "test", data_dir=mnist_tfds_dir,
                       manual_dir=f"{raw_data_dir}/fashion_mnist")
  digits = load_split("mnist", "test", data_dir=mnist_tfds_dir)
  assert fashion.images.shape == digits.images.shape == (10_000, 28, 28, 1)
  # Clothes fill far more of the frame than pen strokes do.
  assert fashion.images.mean() > 1.5 * digits.images.mean()


def test_cifar10_prepares_from_its_array_archive_into_tfds_format(monkeypatch, tmp_path):
  """The real archive's md5s are swapped for the fake one's; all else is the real path."""
  raw = str(tmp_path / "raw" / "cifar10")
  monkeypatch.setitem(array_archives.ARRAY_MD5, "cifar10", write_cifar10_archive(raw))
  data_dir = str(tmp_path / "tfds")
  train = load_split("cifar10", "train", data_dir=data_dir, manual_dir=raw)
  test = load_split("cifar10", "test", data_dir=data_dir)  # Prepared now: no folder needed.
  with np.load(os.path.join(raw, "cifar10.npz")) as archive:
    for data, x, y in ((train, "x_train", "y_train"), (test, "x_test", "y_test")):
      order = np.lexsort(data.images.reshape(len(data.images), -1).T)
      reference = np.lexsort(archive[x].reshape(len(archive[x]), -1).T)
      np.testing.assert_array_equal(data.images[order], archive[x][reference])
      np.testing.assert_array_equal(data.labels[order], archive[y][reference])
  assert train.num_classes == 10 and train.spec.image_shape == (32, 32, 3)
  builder = prepared_builder("cifar10", data_dir=data_dir)
  assert builder.info.features["label"].names[3] == "class_3"


def test_cifar10_archive_with_other_bytes_is_refused_before_preparing(tmp_path):
  raw = str(tmp_path / "raw" / "cifar10")
  write_cifar10_archive(raw)  # Random pixels: not the real dataset's md5s.
  data_dir = str(tmp_path / "tfds")
  with pytest.raises(InvalidInputError, match=r"\['x_train', 'y_train', 'x_test', 'y_test'\]"
                     r".* not the original bytes"):
    prepared_builder("cifar10", data_dir=data_dir, manual_dir=raw)
  assert not os.path.exists(os.path.join(data_dir, "cifar10", "3.0.2"))


def test_cifar10_without_archive_or_tarball_names_both(tmp_path):
  empty = tmp_path / "raw" / "cifar10"
  empty.mkdir(parents=True)
  with pytest.raises(DataUnavailableError, match=r"cifar10\.npz \(or cifar-10-binary"):
    prepared_builder("cifar10", data_dir=str(tmp_path / "tfds"), manual_dir=str(empty))


def test_image_folder_takes_shape_and_classes_from_the_files(image_folder):
  data = load_split("image_folder", "train", image_folder=image_folder)
  assert data.images.shape == (32, 8, 8, 1)
  assert data.num_classes == 2 and np.bincount(data.labels).tolist() == [16, 16]


def test_image_folder_that_does_not_exist_explains_the_layout(tmp_path):
  with pytest.raises(MissingInputError, match="ROOT/<split>/<class name>"):
    load_split("image_folder", image_folder=str(tmp_path / "nowhere"))


def test_unknown_split_lists_the_available_ones(image_folder):
  with pytest.raises(ValueError, match="has no split 'validation'"):
    load_split("image_folder", "validation", image_folder=image_folder)


def _png(path, pixels):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(str(path), tf.io.encode_png(np.asarray(pixels, np.uint8)))


@pytest.mark.parametrize("odd_one_first", [True, False])
def test_every_bad_file_of_an_image_folder_is_named_at_once(tmp_path, odd_one_first):
  root = write_image_folder(str(tmp_path), per_class=3)
  odd_size = tmp_path / "train" / "class_0" / ("0.png" if odd_one_first else "zzz.png")
  _png(odd_size, np.zeros((12, 12, 1)))
  _png(tmp_path / "train" / "class_1" / "rgb.png", np.zeros((8, 8, 3)))
  (tmp_path / "train" / "class_1" / "notes.png").write_text("not an image")
  good = tmp_path / "train" / "class_1" / "000.png"
  (tmp_path / "train" / "class_1" / "cut.png").write_bytes(good.read_bytes()[:40])
  os.makedirs(tmp_path / "train" / "class_2")
  with pytest.raises(InvalidInputError) as error:
    load_split("image_folder", "train", image_folder=root)
  message = str(error.value)
  for name in (str(odd_size), "rgb.png", "notes.png", "cut.png", "class_2: no images"):
    assert name in message
  assert "--config.data.image_size" in message and "--config.data.channels" in message


def test_image_size_and_channels_accept_a_mixed_folder_explicitly(tmp_path):
  root = write_image_folder(str(tmp_path), per_class=3)
  _png(tmp_path / "train" / "class_0" / "big.png", np.full((12, 12, 3), 200))
  data = load_split("image_folder", "train", image_folder=root, image_size=6, channels=1)
  assert data.images.shape == (7, 6, 6, 1) and data.num_classes == 2
  assert data.images[3].min() > 150  # big.png, sorted after 000..002 of class_0: grey 200.
