"""A user's own images, laid out ROOT/<split>/<class name>/<image file>: checked once,
then held in memory like every other split (images.py).

Every file is opened before anything trains, and every problem is reported at once, by
file: a file named as an image that does not decode (not an image, or truncated), an
image whose size or channel count differs from the rest, a class folder without images.
Mixed sizes or channels are never padded or converted silently: `data.image_size`
(resize every image to S x S) and `data.channels` (convert to 1 = grey or 3 = RGB) are
the explicit ways to accept them.
"""

from __future__ import annotations

import collections
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from aigc_jax.data.images import ImageData
from aigc_jax.errors import InvalidInputError, MissingInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
PIL_MODES = {1: "L", 3: "RGB"}  # data.channels -> the PIL mode converted to.
MAX_LISTED = 20  # Offending files named in one error; the rest are counted.


def splits_and_classes(root: str) -> tuple[list[str], list[str]]:
  """The split folders of `root`, and the class names of all of them, sorted: a class's
  label is the same in every split."""
  if not root or not os.path.isdir(root):
    raise MissingInputError(
        f"data.image_folder={root!r} is not a folder. Give a folder laid out as "
        "ROOT/<split>/<class name>/<image file> (e.g. ROOT/train/cat/001.png).")
  splits = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  classes = sorted({c for s in splits for c in os.listdir(os.path.join(root, s))
                    if os.path.isdir(os.path.join(root, s, c))})
  if not classes:
    raise InvalidInputError(f"No class folders under {root}; expected "
                            "ROOT/<split>/<class name>/<image file>.")
  return splits, classes


def _channels(image: Image.Image) -> int:
  return {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "LA": 2, "RGBA": 4}.get(image.mode, 3)


def _read(path: str, image_size: int | None, channels: int | None) -> np.ndarray:
  with Image.open(path) as image:
    image.load()  # Decodes the whole file: a truncated one fails here, not mid-training.
    if channels is not None:
      image = image.convert(PIL_MODES[channels])
    elif image.mode not in ("L", "RGB", "RGBA", "LA"):
      image = image.convert("L" if _channels(image) == 1 else "RGB")
    if image_size is not None:
      image = image.resize((image_size, image_size), Image.BILINEAR)
    pixels = np.asarray(image, np.uint8)
  return pixels[..., None] if pixels.ndim == 2 else pixels


def _listing(problems: list[str]) -> str:
  shown = "\n  ".join(problems[:MAX_LISTED])
  more = len(problems) - MAX_LISTED
  return shown + (f"\n  ... and {more} more" if more > 0 else "")


def load_image_folder(root: str, split: str, *, image_size: int | None = None,
                      channels: int | None = None) -> ImageData:
  """Every image of ROOT/<split>/, checked (see the module docstring), in class order."""
  splits, classes = splits_and_classes(root)
  if split not in splits:
    raise InvalidInputError(
        f"Dataset 'image_folder' has no split '{split}'; {root} has {splits}. To hold out "
        "part of the training images instead: --config.data.eval_fraction=0.1 "
        "--config.data.eval_split=held_out --config.data.test_split=held_out.")
  images, labels, paths, problems = [], [], [], []
  for label, name in enumerate(classes):
    folder = os.path.join(root, split, name)
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES)) \
        if os.path.isdir(folder) else []
    if not files:
      problems.append(f"{folder}: no images in this class folder")
    for f in files:
      path = os.path.join(folder, f)
      try:
        images.append(_read(path, image_size, channels))
        labels.append(label)
        paths.append(path)
      except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        problems.append(f"{path}: cannot be decoded as an image ({error})")
  shapes = collections.Counter(image.shape for image in images)
  if len(shapes) > 1:
    usual = shapes.most_common(1)[0][0]
    problems += [f"{path}: {'x'.join(map(str, image.shape))}, the others "
                 f"{'x'.join(map(str, usual))}"
                 for path, image in zip(paths, images) if image.shape != usual]
  if problems:
    raise InvalidInputError(
        f"data.image_folder={root} split '{split}' has {len(problems)} problem(s):\n  "
        f"{_listing(problems)}\nRemove or fix those files. Images of mixed sizes or "
        "channels can also be accepted explicitly: --config.data.image_size=S resizes "
        "every image to SxS, --config.data.channels=1 (grey) or 3 (RGB) converts them.")
  return ImageData(np.stack(images), np.asarray(labels, np.int32), len(classes))

