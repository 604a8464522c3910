"""Test-wide setup: 4 fake CPU devices, fake image folders, and real MNIST prepared once."""

import hashlib
import os

# Before JAX initialises: every test sees 4 host devices, so sharding is exercised; and
# LLVM optimisation is off, because tests run tiny shapes where compiling dominates (it
# halves the GAN tests' time). Speed is measured by benchmarks/, never by tests.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=4"
                           + " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from experiments.configs import mlp_gan  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

jax.config.update("jax_threefry_partitionable", True)
tf.config.set_visible_devices([], "GPU")


def write_image_folder(root: str, num_classes: int = 2, per_class: int = 16,
                       shape=(8, 8, 1), seed: int = 0) -> str:
  """ROOT/train/<class>/<i>.png with random pixels: the layout ImageFolder reads."""
  rng = np.random.default_rng(seed)
  for c in range(num_classes):
    folder = os.path.join(root, "train", f"class_{c}")
    os.makedirs(folder, exist_ok=True)
    for i in range(per_class):
      pixels = rng.integers(0, 256, shape, dtype=np.uint8)
      tf.io.write_file(os.path.join(folder, f"{i:03d}.png"), tf.io.encode_png(pixels))
  return root


def on_image_folder(config, image_folder: str):
  """`config` reading a fake image folder; the folder has one split, so evaluation and
  the test metrics read `train` too."""
  config.data.name, config.data.image_folder = "image_folder", image_folder
  config.data.eval_split = config.data.test_split = "train"
  return config


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> str:
  return write_image_folder(str(tmp_path_factory.mktemp("image_folder")))


@pytest.fixture
def tiny_config(image_folder):
  """The tiny MLP GAN config, reading a fake 8x8 image folder."""
  config = mlp_gan.get_config("tiny")
  config.data.name = "image_folder"
  config.data.image_folder = image_folder
  return config


def write_cifar10_archive(folder: str, num_train: int = 40, num_test: int = 20,
                          seed: int = 0) -> dict[str, str]:
  """FOLDER/cifar10.npz laid out like the real one, with random pixels; returns the md5 of
  each array's bytes, which the real archive's check compares against."""
  rng = np.random.default_rng(seed)
  arrays = {"x_train": rng.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8),
            "y_train": (np.arange(num_train) % 10).astype(np.uint8),
            "x_test": rng.integers(0, 256, (num_test, 32, 32, 3), dtype=np.uint8),
            "y_test": (np.arange(num_test) % 10).astype(np.uint8),
            "label_names": np.array([f"class_{k}" for k in range(10)])}
  os.makedirs(folder, exist_ok=True)
  np.savez_compressed(os.path.join(folder, "cifar10.npz"), **arrays)
  return {key: hashlib.md5(a.tobytes()).hexdigest() for key, a in arrays.items()
          if key != "label_names"}


@pytest.fixture(scope="session")
def raw_data_dir() -> str:
  """The real raw files: $AIGC_RAW_DATA_DIR, else ../shared/data beside the repository."""
  path = os.environ.get("AIGC_RAW_DATA_DIR") or os.path.join(REPO_ROOT, "..", "shared", "data")
  if not os.path.isfile(os.path.join(path, "mnist", "train-images-idx3-ubyte.gz")):
    pytest.fail(f"Real MNIST raw files not found under {path}/mnist. Set AIGC_RAW_DATA_DIR "
                "to a folder with mnist/*.gz (as in ../shared/data).")
  return os.path.abspath(path)


@pytest.fixture(scope="session")
def mnist_tfds_dir(tmp_path_factory, raw_data_dir) -> str:
  """A TFDS data dir with MNIST prepared offline from the raw files (once per session)."""
  from aigc_jax.data.sources import prepared_builder
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  prepared_builder("mnist", data_dir=data_dir,
                   manual_dir=os.path.join(raw_data_dir, "mnist"))
  return data_dir
