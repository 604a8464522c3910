"""Every sample-based image metric for one set of generated images, in one report.

Definitions (docs/metrics.md has them with their sources):
- fidelity / diversity: FID, KID, precision, recall, density, coverage (sample_sets.py),
  against the real held-out split, in the feature classifier's space;
- mode coverage: the histogram of predicted classes, its entropy (1 = uniform) and a
  classifier-based Inception Score analogue exp(E_x KL(p(y|x) || p(y)));
- controllability (conditional models): the share of samples classified as requested;
- hallucination: the share of samples outside the real k-NN manifold (1 - per-sample
  precision) and the share the classifier cannot assign to any class with probability at
  least `confident` -- both also reported for the real held-out split as the floor;
- memorisation: each sample's distance to its nearest training image against the real
  held-out images' own distances; a near copy is closer than the 1st percentile of those.
"""

from __future__ import annotations

import numpy as np

from aigc_jax.metrics.sample_sets import (frechet_distance, kernel_inception_distance,
                                          manifold_metrics, nearest_distances)


def class_statistics(probs: np.ndarray) -> dict:
  predicted = np.argmax(probs, axis=1)
  num_classes = probs.shape[1]
  histogram = np.bincount(predicted, minlength=num_classes) / len(predicted)
  nonzero = histogram[histogram > 0]
  marginal = probs.mean(0)
  kl = np.sum(probs * (np.log(probs + 1e-12) - np.log(marginal + 1e-12)), axis=1)
  return {
      "class_histogram": histogram.round(4).tolist(),
      "class_entropy": float(-np.sum(nonzero * np.log(nonzero)) / np.log(num_classes)),
      "classifier_score": float(np.exp(np.mean(kl))),
  }


def unassignable_share(probs: np.ndarray, confident: float) -> float:
  return float(np.mean(np.max(probs, axis=1) < confident))


def memorisation(fake_feats: np.ndarray, real_feats: np.ndarray,
                 train_feats: np.ndarray) -> dict:
  fake_to_train = nearest_distances(fake_feats, train_feats)
  real_to_train = nearest_distances(real_feats, train_feats)
  threshold = float(np.percentile(real_to_train, 1))
  return {
      "nn_train_distance_median": float(np.median(fake_to_train)),
      "real_nn_train_distance_median": float(np.median(real_to_train)),
      "near_copy_threshold": threshold,
      "near_copy_share": float(np.mean(fake_to_train < threshold)),
      "exact_copy_share": float(np.mean(fake_to_train <= 1e-4 * np.median(real_to_train))),
  }


def set_distances(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3,
                  kid_subsets: int = 100) -> dict:
  """FID, KID and the k-NN manifold metrics; 'fake_in_real_manifold' is per sample."""
  kid_mean, kid_std = kernel_inception_distance(real_feats, fake_feats, kid_subsets)
  return {"fid": frechet_distance(real_feats, fake_feats), "kid": kid_mean, "kid_std": kid_std,
          **manifold_metrics(real_feats, fake_feats, k)}


def real_floor(real_feats: np.ndarray, other_real_feats: np.ndarray, k: int = 3) -> dict:
  """What a perfect generator would score: held-out reals against other reals (from the
  training split, as many as the samples), so every metric has its floor beside it."""
  floor = set_distances(real_feats, other_real_feats, k)
  floor["hallucination_off_manifold"] = float(1.0 - np.mean(floor.pop("fake_in_real_manifold")))
  return floor


def image_sample_report(fake_feats, fake_probs, real_feats, real_probs, train_feats, *,
                        requested_labels: np.ndarray | None = None, k: int = 3,
                        confident: float = 0.9) -> dict:
  """Features/probabilities of fakes, real held-out and real training images -> metrics."""
  distances = set_distances(real_feats, fake_feats, k)
  in_manifold = distances.pop("fake_in_real_manifold")
  report = {
      "num_samples": len(fake_feats), "num_real": len(real_feats),
      **distances,
      **class_statistics(fake_probs),
      "hallucination_off_manifold": float(1.0 - np.mean(in_manifold)),
      "hallucination_unassignable": unassignable_share(fake_probs, confident),
      "hallucination_unassignable_real_floor": unassignable_share(real_probs, confident),
      "confidence_threshold": confident, "k_nearest": k,
      **memorisation(fake_feats, real_feats, train_feats),
  }
  if requested_labels is not None:
    report["class_conditional_accuracy"] = float(
        np.mean(np.argmax(fake_probs, axis=1) == requested_labels))
  return report
