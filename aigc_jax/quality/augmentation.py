"""Generate, filter, retrain: does a conditional generator's output help a classifier that
has little labelled data, and does filtering that output help more?

Three classifiers (the feature-classifier architecture) are trained for about the same
number of steps and scored on the real test split:
- real: a small balanced labelled subset only;
- real + generated: the subset plus class-conditional samples, labelled as requested;
- real + filtered: only the samples the `real` classifier assigns to the requested class
  with probability >= min_confidence (a quality filter that needs no extra labels).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aigc_jax.data.image_grid import to_uint8
from aigc_jax.data.images import ImageData
from aigc_jax.metrics.feature_classifier import (ClassifierSettings, accuracy, features_and_probs,
                                                 train_classifier)


def balanced_subset(data: ImageData, size: int, seed: int) -> ImageData:
  """`size` examples, as equal per class as `size` allows, drawn without replacement."""
  rng = np.random.default_rng(seed)
  per_class = np.array_split(np.arange(size), data.num_classes)
  ids = np.concatenate([rng.choice(np.flatnonzero(data.labels == c), len(part), replace=False)
                        for c, part in enumerate(per_class)])
  return ImageData(data.images[ids], data.labels[ids], data.num_classes)


def confident_agreement(probs: np.ndarray, labels: np.ndarray, min_confidence: float
                        ) -> np.ndarray:
  """Mask of samples classified as their requested label with p >= min_confidence."""
  return (probs.argmax(1) == labels) & (probs.max(1) >= min_confidence)


def _with(real: ImageData, images: np.ndarray, labels: np.ndarray) -> ImageData:
  return ImageData(np.concatenate([real.images, images]),
                   np.concatenate([real.labels, labels.astype(np.int32)]), real.num_classes)


def augmentation_accuracies(real: ImageData, test: ImageData, samples: np.ndarray,
                            sample_labels: np.ndarray, *, epochs: int, min_confidence: float,
                            seed: int = 0, log=print) -> dict:
  """Test accuracy of the three classifiers (each initialised and shuffled by `seed`);
  epochs apply to `real`, and the larger sets get proportionally fewer so every
  classifier takes about the same number of steps."""
  settings = ClassifierSettings(epochs=epochs, seed=seed)
  scaled = lambda n: dataclasses.replace(settings,
                                         epochs=max(1, round(epochs * len(real.images) / n)))
  model, params = train_classifier(real, settings, log)
  report = {"real_examples": len(real.images), "generated_examples": len(samples),
            "min_confidence": min_confidence, "accuracy_real": accuracy(model, params, test)}
  generated = to_uint8(samples)  # Stored like the real images.
  keep = confident_agreement(features_and_probs(model, params, generated)[1], sample_labels,
                             min_confidence)
  report["kept_share"] = float(keep.mean())
  for name, mask in (("generated", np.ones(len(generated), bool)), ("filtered", keep)):
    mixed = _with(real, generated[mask], sample_labels[mask])
    model, params = train_classifier(mixed, scaled(len(mixed.images)), log)
    report[f"accuracy_real_plus_{name}"] = accuracy(model, params, test)
  return report
