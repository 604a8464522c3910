"""Dirty data with ground truth: reproducible corruptions of an in-memory image split.

A corruption spec such as "symmetric_labels=0.2,near_duplicate=0.05" names kinds and the
share of the split each one takes. The examples to corrupt are drawn once from the seed,
without overlap between kinds, so every example carries exactly one ground-truth kind
(0 = clean) and every other example is left bit-for-bit as it was. Duplicates copy clean
examples only, so a detector's find can be checked against the pair it came from.

Kinds (each changes the image or the label of its examples, never neither):
- symmetric_labels: the label becomes a uniformly drawn *other* class;
- class_labels: class-dependent noise, label c becomes (c + 1) mod K;
- pixel_noise: Gaussian noise of std 0.3 (pixel range 0..1), clipped;
- blur: Gaussian blur of std 1.5 pixels;
- occlusion: a square of half the image side at a random place is set to white;
- inversion: pixel p becomes 255 - p;
- exact_duplicate: a copy (image and label) of a random clean example;
- near_duplicate: such a copy with +-4/255 uniform noise and a 0.9..1.1 contrast change;
- out_of_distribution: an image from another dataset of the same shape (e.g. Fashion-MNIST
  inside MNIST) with a random label, as scraped data mislabelled by a pipeline would be.

One kind removes examples instead: class_imbalance=F:C1,C2,... keeps a seeded share F of
the examples of classes C1, C2, ... and drops the rest, as a collection that under-samples
some groups would. It applies first; the other kinds then corrupt what is left, and the
ground truth records the dropped examples' ids in the split as stored (`removed`).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from aigc_jax.data.images import ImageData
from aigc_jax.errors import InvalidInputError

CLEAN = "clean"
# Random streams are keyed by purpose as well as seed: a corruption and a detector given the
# same seed must not draw the same permutation (the detector would then see folds that
# line up with the corrupted examples).
CORRUPTION_STREAM = 1


def _symmetric_labels(images, labels, idx, rng, num_classes, **_):
  offset = rng.integers(1, num_classes, len(idx))
  labels[idx] = (labels[idx] + offset) % num_classes


def _class_labels(images, labels, idx, rng, num_classes, **_):
  labels[idx] = (labels[idx] + 1) % num_classes


def _pixel_noise(images, labels, idx, rng, **_):
  noisy = images[idx] + rng.normal(0.0, 0.3 * 255, images[idx].shape)
  images[idx] = np.clip(np.round(noisy), 0, 255)


def _blur(images, labels, idx, rng, **_):
  images[idx] = np.clip(np.round(gaussian_blur(images[idx].astype(np.float32), 1.5)), 0, 255)


def _occlusion(images, labels, idx, rng, **_):
  height, width = images.shape[1:3]
  side_h, side_w = height // 2, width // 2
  tops = rng.integers(0, height - side_h + 1, len(idx))
  lefts = rng.integers(0, width - side_w + 1, len(idx))
  for i, top, left in zip(idx, tops, lefts):
    images[i, top:top + side_h, left:left + side_w] = 255


def _inversion(images, labels, idx, rng, **_):
  images[idx] = 255 - images[idx]


def _exact_duplicate(images, labels, idx, rng, sources, **_):
  images[idx], labels[idx] = images[sources], labels[sources]


def _near_duplicate(images, labels, idx, rng, sources, **_):
  shape = (len(idx),) + (1,) * (images.ndim - 1)
  contrast = rng.uniform(0.9, 1.1, shape)
  jitter = rng.uniform(-4, 4, images[sources].shape)
  images[idx] = np.clip(np.round(images[sources] * contrast + jitter), 0, 255)
  labels[idx] = labels[sources]


def _out_of_distribution(images, labels, idx, rng, num_classes, ood_images, **_):
  if ood_images is None:
    raise InvalidInputError("Corruption 'out_of_distribution' needs images from another dataset; "
                            "set --config.data.ood_source (e.g. fashion_mnist inside mnist).")
  if ood_images.shape[1:] != images.shape[1:]:
    raise InvalidInputError(f"Out-of-distribution images have shape {ood_images.shape[1:]}, the "
                            f"data {images.shape[1:]}; pick an ood_source of the same image shape.")
  images[idx] = ood_images[rng.choice(len(ood_images), len(idx), replace=False)]
  labels[idx] = rng.integers(0, num_classes, len(idx))


CORRUPTIONS = {
    "symmetric_labels": _symmetric_labels,
    "class_labels": _class_labels,
    "pixel_noise": _pixel_noise,
    "blur": _blur,
    "occlusion": _occlusion,
    "inversion": _inversion,
    "exact_duplicate": _exact_duplicate,
    "near_duplicate": _near_duplicate,
    "out_of_distribution": _out_of_distribution,
}
_COPIES = ("exact_duplicate", "near_duplicate")


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
  """(N, H, W, C) float -> same, blurred separably along H and W (edges reflected)."""
  radius = int(np.ceil(3 * sigma))
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  taps /= taps.sum()
  for axis in (1, 2):
    padding = [(0, 0)] * images.ndim
    padding[axis] = (radius, radius)
    padded = np.pad(images, padding, mode="reflect")
    length = images.shape[axis]
    images = sum(w * np.take(padded, np.arange(t, t + length), axis=axis)
                 for t, w in enumerate(taps))
  return images


IMBALANCE = "class_imbalance"


def spec_items(spec: str) -> list[str]:
  """'a=1,b=2:0,1' -> ['a=1', 'b=2:0,1']: a comma starts a new item only before 'kind='."""
  return [part.strip() for part in re.split(r",(?=\s*[A-Za-z_]\w*\s*=)", spec) if part.strip()]


def split_imbalance(spec: str, num_classes: int
                    ) -> tuple[tuple[float, tuple[int, ...]] | None, str]:
  """The class_imbalance item of `spec` as (kept share, classes), and the rest of `spec`."""
  found, rest = None, []
  for item in spec_items(spec):
    name, _, value = item.partition("=")
    if name.strip() != IMBALANCE:
      rest.append(item)
      continue
    share, _, classes = value.partition(":")
    try:
      found = (float(share), tuple(int(c) for c in classes.split(",")))
    except ValueError:
      raise InvalidInputError(f"'{item}' must read {IMBALANCE}=SHARE:CLASS,CLASS,... e.g. "
                              f"{IMBALANCE}=0.1:0,1 (classes 0 and 1 keep 10%).") from None
    if not 0.0 <= found[0] <= 1.0:
      raise InvalidInputError(f"{IMBALANCE} keeps a share in [0, 1]; '{item}' asks {found[0]}.")
    if not all(0 <= c < num_classes for c in found[1]):
      raise InvalidInputError(f"'{item}' names a class outside 0..{num_classes - 1}.")
  return found, ",".join(rest)


def imbalance_removed(labels: np.ndarray, share: float, classes: tuple[int, ...],
                      rng: np.random.Generator) -> np.ndarray:
  """Sorted ids to drop so that each class in `classes` keeps round(share * count)."""
  removed = []
  for c in classes:
    members = np.flatnonzero(labels == c)
    keep = int(round(share * len(members)))
    removed.append(rng.permutation(members)[keep:])
  return np.sort(np.concatenate(removed)) if removed else np.zeros(0, np.int64)


def parse_spec(spec: str, known=CORRUPTIONS) -> list[tuple[str, float]]:
  """'kind=rate,kind=rate' -> [(kind, rate), ...]; '' -> []. Kinds must be in `known`."""
  pairs = []
  for item in spec_items(spec):
    name, _, rate = item.partition("=")
    name = name.strip()
    if name not in known:
      raise InvalidInputError(f"Unknown corruption '{name}' in '{spec}'; pick from "
                              f"{sorted(known)}, written as kind=rate,kind=rate.")
    try:
      value = float(rate)
    except ValueError:
      raise InvalidInputError(f"Corruption '{item}' needs a rate, e.g. {name}=0.1.") from None
    if not 0.0 <= value <= 1.0:
      raise InvalidInputError(f"Corruption rate {value} for '{name}' is not in [0, 1].")
    pairs.append((name, value))
  names = [name for name, _ in pairs]
  if len(set(names)) != len(names):
    raise InvalidInputError(f"Corruption spec '{spec}' names a kind twice.")
  return pairs


def draw_disjoint(candidates: np.ndarray, rates: list[float], rng: np.random.Generator,
                  spec: str) -> tuple[list[np.ndarray], np.ndarray]:
  """Splits round(rate * len(candidates)) of the candidates off for each rate, without
  overlap; returns the sorted chosen ids per rate and the ids left clean."""
  counts = [int(round(rate * len(candidates))) for rate in rates]
  if sum(counts) > len(candidates):
    raise InvalidInputError(f"Corruption rates in '{spec}' add up to more than the whole split.")
  order = rng.permutation(candidates)
  ends = np.cumsum(counts)
  chosen = [np.sort(order[end - count:end]) for count, end in zip(counts, ends)]
  return chosen, order[sum(counts):]


def kind_per_item(chosen: list[np.ndarray], num_items: int) -> np.ndarray:
  """(num_items,) int: i + 1 for the ids in chosen[i], 0 (clean) elsewhere."""
  kind = np.zeros(num_items, np.int64)
  for i, ids in enumerate(chosen):
    kind[ids] = i + 1
  return kind


@dataclasses.dataclass(frozen=True)
class GroundTruth:
  """Which corruption each item of a split (an example, or a line of text) received."""

  kinds: tuple[str, ...]  # kinds[0] is "clean".
  kind: np.ndarray  # (N,) int: index into `kinds` of each item's corruption.
  source: np.ndarray  # (N,) int: the clean item a duplicate copies; -1 otherwise.
  # Ids, in the split as stored, that class_imbalance dropped; kind and source index the
  # split without them.
  removed: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64),
                                          kw_only=True)

  def ids(self, name: str) -> np.ndarray:
    """Indices of the items corrupted by `name` (empty if the spec lacks it)."""
    if name not in self.kinds:
      return np.zeros(0, np.int64)
    return np.flatnonzero(self.kind == self.kinds.index(name))

  def summary(self) -> dict[str, int]:
    counts = {name: int(np.sum(self.kind == i)) for i, name in enumerate(self.kinds)}
    return {**counts, f"{IMBALANCE}_removed": len(self.removed)} if len(self.removed) else counts

  def save(self, path: str) -> None:
    """Writes the ground truth (not the data) as an .npz: kind, source, kind names and the
    ids class_imbalance removed."""
    np.savez(path, kind=self.kind, source=self.source, kinds=np.array(self.kinds),
             removed=self.removed)


@dataclasses.dataclass(frozen=True)
class Corrupted(GroundTruth):
  """A corrupted image split and its ground truth."""

  data: ImageData


def corrupt(data: ImageData, spec: str, seed: int,
            ood_images: np.ndarray | None = None) -> Corrupted:
  """Applies `spec` to a copy of `data`; see the module docstring for the kinds."""
  imbalance, spec = split_imbalance(spec, data.num_classes)
  pairs = parse_spec(spec)
  rng = np.random.default_rng([CORRUPTION_STREAM, seed])
  removed = np.zeros(0, np.int64)
  if imbalance is not None:
    removed = imbalance_removed(data.labels, *imbalance, rng)
    kept = np.setdiff1d(np.arange(len(data.images)), removed)
    data = ImageData(data.images[kept], data.labels[kept], data.num_classes)
  n = len(data.images)
  chosen, clean = draw_disjoint(np.arange(n), [rate for _, rate in pairs], rng, spec)
  kind = kind_per_item(chosen, n)
  source = np.full(n, -1, np.int64)
  images, labels = data.images.copy(), data.labels.copy()
  for (name, _), idx in zip(pairs, chosen):
    if not len(idx):
      continue
    sources = None
    if name in _COPIES:
      if not len(clean):
        raise InvalidInputError(f"'{name}' copies clean examples, but '{spec}' leaves none clean.")
      sources = rng.choice(clean, len(idx), replace=len(idx) > len(clean))
      source[idx] = sources
    CORRUPTIONS[name](images, labels, idx, rng, num_classes=data.num_classes,
                      sources=sources, ood_images=ood_images)
  return Corrupted(kinds=(CLEAN, *(name for name, _ in pairs)), kind=kind, source=source,
                   removed=removed, data=ImageData(images, labels, data.num_classes))
