"""Per-class figures of a sample set: does the model serve every class (group) equally?

A generator trained on data that under-represents some classes can under-produce them
further (amplify the imbalance), reproduce it, or correct it. Classes are read by the
feature classifier (samples) and from the labels (real images):
- representation ratio: a class's share of the samples over its share of the training
  split (< 1: under-produced relative to what the model was shown);
- per-class precision and recall: the samples classified as c against the real held-out
  images of class c, where both have enough members for k-NN balls to mean something.
  k-NN recall rises as a class's samples thin out (their balls widen), so compare a
  class's recall across runs only at similar numbers of its samples;
- per-class class-conditional accuracy (conditional models) and the worst class;
- a verdict on the classes the training data under-represents (share below half of
  uniform): their joint share of the samples against their share of the data, two
  binomial standard errors either way counting as no change.
"""

from __future__ import annotations

import numpy as np

from aigc_jax.metrics.sample_sets import manifold_metrics

MIN_PER_CLASS = 50  # Fewer samples or reals of a class: no per-class precision/recall.


def minority_classes(train_share: np.ndarray) -> np.ndarray:
  """Classes whose training share is below half of an even share."""
  return np.flatnonzero(train_share < 0.5 / len(train_share))


def imbalance_verdict(sample_share: np.ndarray, train_share: np.ndarray,
                      num_samples: int) -> dict:
  """Whether the model amplifies, reproduces or reduces its data's imbalance."""
  minority = minority_classes(train_share)
  if not len(minority):
    return {"minority_classes": [], "verdict": "balanced data"}
  data_share = float(train_share[minority].sum())
  model_share = float(sample_share[minority].sum())
  margin = 2.0 * np.sqrt(data_share * (1.0 - data_share) / num_samples)
  verdict = ("amplifies" if model_share < data_share - margin
             else "reduces" if model_share > data_share + margin else "reproduces")
  return {"minority_classes": minority.tolist(), "minority_data_share": data_share,
          "minority_sample_share": model_share, "verdict": verdict}


def per_class_report(fake_feats: np.ndarray, fake_probs: np.ndarray, real_feats: np.ndarray,
                     real_labels: np.ndarray, train_share: np.ndarray, *,
                     requested_labels: np.ndarray | None = None, k: int = 3) -> dict:
  """The per-class figures of the module docstring; lists are indexed by class."""
  num_classes = fake_probs.shape[1]
  predicted = np.argmax(fake_probs, axis=1)
  sample_share = np.bincount(predicted, minlength=num_classes) / len(predicted)
  ratio = [float(s / t) if t > 0 else None for s, t in zip(sample_share, train_share)]
  precision, recall = [], []
  for c in range(num_classes):
    fakes, reals = fake_feats[predicted == c], real_feats[real_labels == c]
    if min(len(fakes), len(reals)) < MIN_PER_CLASS:
      precision.append(None)
      recall.append(None)
      continue
    metrics = manifold_metrics(reals, fakes, k)
    precision.append(metrics["precision"])
    recall.append(metrics["recall"])
  report = {"train_share": np.round(train_share, 4).tolist(),
            "sample_share": np.round(sample_share, 4).tolist(),
            "representation_ratio": ratio, "precision": precision, "recall": recall,
            **imbalance_verdict(sample_share, np.asarray(train_share), len(predicted))}
  measured = [(r, c) for c, r in enumerate(recall) if r is not None]
  if measured:
    report["worst_recall_class"] = min(measured)[1]
    report["recall_gap"] = max(measured)[0] - min(measured)[0]
  if requested_labels is not None:
    accuracy = [float(np.mean(predicted[requested_labels == c] == c))
                if np.any(requested_labels == c) else None for c in range(num_classes)]
    scored = [(a, c) for c, a in enumerate(accuracy) if a is not None]
    report["class_conditional_accuracy"] = accuracy
    report["worst_accuracy_class"] = min(scored)[1]
    report["accuracy_gap"] = max(scored)[0] - min(scored)[0]
  return report
