"""Collects evaluation reports of several runs into one Markdown table and PNG plots.

Reads RUN/eval/step_N.json (written by experiments.evaluate) for each run. The table shows
each run's latest report; the plots show headline metrics against the step, the latest
precision against recall, and, where reports have per-class figures, each class's
representation ratio and recall. Runs measured in different feature spaces (different
classifier fingerprints) are flagged, since their image metrics are not comparable.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from aigc_jax.errors import MissingInputError
from aigc_jax.plotting import pyplot

# Bookkeeping, not results: left out of tables and plots.
_SKIP = re.compile(r"(^|\.)(step|eval_seconds|num_\w+|k_nearest|confidence_threshold|"
                   r"kid_std|prompt_chars|new_chars|temperature|iwae_k|batch_size)$|"
                   r"^feature_classifier\.|^figures")
PLOTTED = ("samples.fid", "samples.precision", "samples.recall",
           "samples.hallucination_off_manifold", "samples.class_conditional_accuracy",
           "test_neg_elbo", "validation_bits_per_char", "samples.invented_word_rate")


def flatten(report: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in report.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def load_reports(run_dir: str) -> list[dict]:
  """Flattened reports of one run, by step; fails naming the folder if there are none."""
  paths = glob.glob(os.path.join(run_dir, "eval", "step_*.json"))
  if not paths:
    raise MissingInputError(f"No evaluation reports in {run_dir}/eval; run "
                            f"python -m experiments.evaluate --workdir={run_dir} first.")
  reports = []
  for path in paths:
    with open(path) as f:
      reports.append(flatten(json.load(f)))
  return sorted(reports, key=lambda r: r["step"])


def numeric_keys(reports: list[dict]) -> list[str]:
  keys = {k for r in reports for k, v in r.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and not _SKIP.search(k)}
  return sorted(keys)


def _cell(value) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return "" if value is None else str(value)


def markdown_table(runs: dict[str, list[dict]]) -> str:
  latest = {name: reports[-1] for name, reports in runs.items()}
  keys = numeric_keys(list(latest.values()))
  lines = ["| run | step | classifier | " + " | ".join(keys) + " |",
           "|---" * (len(keys) + 3) + "|"]
  for name, report in latest.items():
    cells = [name, str(report["step"]), report.get("feature_classifier.fingerprint", "")]
    lines.append("| " + " | ".join(cells + [_cell(report.get(k)) for k in keys]) + " |")
  fingerprints = {r.get("feature_classifier.fingerprint") for r in latest.values()} - {None}
  if len(fingerprints) > 1:
    lines.append("\nWarning: these runs were measured with different feature classifiers "
                 f"({sorted(fingerprints)}); their image metrics are not comparable.")
  return "\n".join(lines) + "\n"


def save_plots(runs: dict[str, list[dict]], stem: str) -> list[str]:
  """STEM_metrics.png (metric vs step) and STEM_precision_recall.png; returns the paths."""
  plt = pyplot()

  written = []
  present = [k for k in PLOTTED if any(k in r for rs in runs.values() for r in rs)]
  if present:
    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 3.2), squeeze=False)
    for ax, key in zip(axes[0], present):
      for name, reports in runs.items():
        points = [(r["step"], r[key]) for r in reports if key in r]
        if points:
          ax.plot(*zip(*points), marker="o", label=name)
      ax.set_title(key.removeprefix("samples."))
      ax.set_xlabel("step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    written.append(f"{stem}_metrics.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)
  latest = {n: rs[-1] for n, rs in runs.items() if "samples.precision" in rs[-1]}
  if latest:
    fig, ax = plt.subplots(figsize=(4, 4))
    for name, report in latest.items():
      ax.scatter(report["samples.recall"], report["samples.precision"])
      ax.annotate(name, (report["samples.recall"], report["samples.precision"]), fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="recall", ylabel="precision",
           title="precision vs recall (latest)")
    fig.tight_layout()
    written.append(f"{stem}_precision_recall.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)
  per_class = {n: rs[-1] for n, rs in runs.items() if PER_CLASS_RATIO in rs[-1]}
  if per_class:
    written.append(save_per_class_plot(per_class, f"{stem}_per_class.png"))
  return written


PER_CLASS_RATIO = "samples.per_class.representation_ratio"


def save_per_class_plot(latest: dict[str, dict], path: str) -> str:
  """Each run's representation ratio and recall by class (metrics/class_report.py)."""
  plt = pyplot()

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for ax, key, title in ((axes[0], PER_CLASS_RATIO, "representation ratio (1 = as in data)"),
                         (axes[1], "samples.per_class.recall", "recall within the class")):
    for name, report in latest.items():
      values = [np.nan if v is None else v for v in report.get(key, [])]
      ax.plot(range(len(values)), values, marker="o", label=name)
    ax.set(title=title, xlabel="class")
  axes[0].axhline(1.0, color="grey", linewidth=0.8)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
