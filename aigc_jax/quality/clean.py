"""Runs the detectors a cleaning config names over a split and decides what to exclude.

Every detector returns the ids it flags, most suspicious first; the exclude set is their
union (duplicates keep one member per group). When the split was corrupted on purpose, each
detector is also scored against the ground truth of the kinds it is meant to catch, and
the exclude set's recall is given per injected kind.
"""

from __future__ import annotations

import dataclasses
import time

import ml_collections
import numpy as np

from aigc_jax.data.corrupt import GroundTruth
from aigc_jax.data.images import ImageData
from aigc_jax.data.text import TextData
from aigc_jax.errors import InvalidInputError
from aigc_jax.metrics.feature_classifier import default_settings
from aigc_jax.quality import duplicates, label_issues, outliers, text_issues

# Which injected kinds each detector is meant to find.
TARGETS = {
    "exact_duplicates": ("exact_duplicate",),
    "near_duplicates": ("exact_duplicate", "near_duplicate"),
    "label_issues": ("symmetric_labels", "class_labels", "label_file"),
    "outliers": ("pixel_noise", "blur", "occlusion", "inversion", "out_of_distribution"),
    "repeated_lines": ("boilerplate",),
    "garbage_lines": ("garbage_lines", "char_noise"),
}
IMAGE_DETECTORS = ("exact_duplicates", "near_duplicates", "label_issues", "outliers")
TEXT_DETECTORS = ("repeated_lines", "garbage_lines")


def detector_names(config: ml_collections.ConfigDict, is_text: bool) -> list[str]:
  known = TEXT_DETECTORS if is_text else IMAGE_DETECTORS
  names = [n.strip() for n in config.detectors.split(",") if n.strip()]
  unknown = sorted(set(names) - set(known))
  if unknown:
    raise InvalidInputError(f"Unknown detector(s) {unknown} for {'text' if is_text else 'images'}; "
                            f"pick from {list(known)} (config.detectors, comma-separated).")
  return names


def truth_ids(truth: GroundTruth, kinds) -> np.ndarray:
  """The ids a detector should flag: the injected examples of its kinds, and for
  duplicates also the clean originals they copy (either member reveals the pair)."""
  ids = [truth.ids(kind) for kind in kinds]
  ids += [truth.source[truth.ids(kind)] for kind in kinds if kind.endswith("duplicate")]
  return np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)


def precision_recall(flagged: np.ndarray, expected: np.ndarray) -> dict:
  hits = len(np.intersect1d(flagged, expected))
  return {"truth": int(len(expected)), "precision": hits / len(flagged) if len(flagged) else None,
          "recall": hits / len(expected) if len(expected) else None}


def excluded_share_by_kind(truth: GroundTruth, exclude: np.ndarray) -> dict[str, float | None]:
  """Per injected kind, the share the exclude set removes. An injected copy counts as
  removed when either it or its original is (dropping one of a pair is the cure), and the
  originals of copies leave the 'clean' share, which is then the false-alarm rate."""
  excluded = np.zeros(len(truth.kind), bool)
  excluded[exclude] = True
  copies = np.flatnonzero(truth.source >= 0)
  excluded[copies] |= excluded[truth.source[copies]]
  originals = np.zeros_like(excluded)
  originals[truth.source[copies]] = True
  shares = {}
  for i, kind in enumerate(truth.kinds):
    members = (truth.kind == i) & ~originals
    shares[kind] = float(excluded[members].mean()) if members.any() else None
  return shares


def _duplicate_result(groups: list[np.ndarray]):
  """Every group member is flagged; all but one per group is excluded."""
  flagged = np.concatenate(groups) if groups else np.zeros(0, np.int64)
  return flagged, duplicates.all_but_first(groups), {"groups": len(groups)}


def _image_detectors(config, data: ImageData, names, neg_elbo, log):
  """{name: (flagged ids, ids to exclude, info)} for image detectors, and the per-example
  scores they were computed from (see `clean`)."""
  results = {}
  if "exact_duplicates" in names:
    results["exact_duplicates"] = _duplicate_result(
        duplicates.exact_duplicate_groups(data.images))
  if "near_duplicates" in names:
    embedding = duplicates.pixel_embedding(data.images, config.embedding_dims)
    groups, _ = duplicates.near_duplicate_groups(embedding, config.near_duplicate_threshold)
    results["near_duplicates"] = _duplicate_result(groups)
  probs = neighbour_distance = None
  if {"label_issues", "outliers"} & set(names):
    # The feature network's family for these images (colour: the BatchNorm conv net).
    settings = dataclasses.replace(default_settings(data.spec.image_shape),
                                   epochs=config.cv_epochs, seed=config.seed)
    probs, neighbour_distance = label_issues.out_of_sample_scores(
        data, config.cv_folds, settings, config.neighbours, log=log)
  if "label_issues" in names:
    issues = label_issues.find_label_issues(data.labels, probs, config.label_filter,
                                            config.label_ranking)
    results["label_issues"] = (issues, issues, {
        "method": label_issues.library_card(config.label_filter, config.label_ranking),
        "out_of_sample_accuracy_on_given_labels": float(np.mean(probs.argmax(1) == data.labels))})
  pixel_scores = outliers.pixel_statistics(data.images) if config.pixel_statistics else {}
  if "outliers" in names:
    flagged, counts = outliers.find_outliers(probs, neg_elbo, neighbour_distance,
                                             confidence_ratio=config.confidence_ratio,
                                             z_threshold=config.outlier_z,
                                             pixel_scores=pixel_scores)
    results["outliers"] = (flagged, flagged, counts)
  scores = {"out_of_sample_probs": probs, "neighbour_distance": neighbour_distance,
            "neg_elbo": neg_elbo, **pixel_scores}
  return results, {name: score for name, score in scores.items() if score is not None}


def _text_detectors(config, data: TextData, names):
  lines = data.spec.decode(data.tokens).split("\n")
  results = {}
  if "repeated_lines" in names:
    ids = text_issues.repeated_lines(lines, config.repeat_min_length, config.repeat_min_count)
    results["repeated_lines"] = (ids, ids, {})
  if "garbage_lines" in names:
    surprisal = text_issues.line_surprisal(lines)
    non_empty = np.flatnonzero([bool(line) for line in lines])
    z = np.full(len(lines), -np.inf)
    z[non_empty] = outliers.robust_z(surprisal[non_empty])
    ids = outliers.ranked(np.flatnonzero(z > config.outlier_z), z)
    results["garbage_lines"] = (ids, ids, {"z_threshold": config.outlier_z})
  return results


def clean(config: ml_collections.ConfigDict, data: ImageData | TextData,
          truth: GroundTruth | None = None,
          neg_elbo: np.ndarray | None = None, log=print
          ) -> tuple[dict, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
  """Runs the detectors; returns (report, ids to exclude, flagged ids per detector, the
  per-example scores behind them: out-of-sample class probabilities, neighbour distances
  in the fold classifiers' features, the VAE's -ELBO, as far as computed). `neg_elbo`: a
  VAE's per-example -ELBO, an extra outlier score."""
  is_text = isinstance(data, TextData)
  names = detector_names(config, is_text)
  start = time.perf_counter()
  scores = {}
  if is_text:
    results = _text_detectors(config, data, names)
  else:
    results, scores = _image_detectors(config, data, names, neg_elbo, log)
  exclude = (np.unique(np.concatenate([drop for _, drop, _ in results.values()]))
             if results else np.zeros(0, np.int64))
  report = {"detectors": {}, "seconds": time.perf_counter() - start,
            "exclude_count": int(len(exclude))}
  for name, (flagged, drop, info) in results.items():
    entry = {"flagged": int(len(flagged)), "excluded": int(len(drop)), **info}
    if truth is not None:
      entry["vs_ground_truth"] = precision_recall(flagged, truth_ids(truth, TARGETS[name]))
    report["detectors"][name] = entry
  if truth is not None:
    report["excluded_share_by_kind"] = excluded_share_by_kind(truth, exclude)
  return report, exclude, {name: flagged for name, (flagged, _, _) in results.items()}, scores
