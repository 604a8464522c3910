"""Tables and plots for the dirty-data study: one row per (model, corruption rate, arm).

An arm is "dirty" (trained on the corrupted split) or "cleaned" (the same split minus what
experiments.clean_data excluded). Rows are flat dicts; the headline metrics come from the
evaluation reports (experiments.evaluate), so the study measures exactly what a user's
own evaluation would.
"""

from __future__ import annotations

import csv

from aigc_jax.metrics.compare_runs import flatten

HEADLINE = {
    "fid": "samples.fid",
    "precision": "samples.precision",
    "recall": "samples.recall",
    "off_manifold": "samples.hallucination_off_manifold",
    "unassignable": "samples.hallucination_unassignable",
    "class_accuracy": "samples.class_conditional_accuracy",
    "val_bits_per_char": "validation_bits_per_char",
    "invented_words": "samples.invented_word_rate",
}
COLUMNS = ("model", "rate", "arm", "train_examples", *HEADLINE)


def corruption_spec(rate: float, kinds: list[str]) -> str:
  """A total corruption rate spread evenly over kinds, as a data.corrupt spec."""
  return ",".join(f"{kind}={rate / len(kinds):.6g}" for kind in kinds) if rate else ""


def study_row(model: str, rate: float, arm: str, train_examples: int, report: dict) -> dict:
  flat = flatten(report)
  return {"model": model, "rate": rate, "arm": arm, "train_examples": train_examples,
          **{name: flat.get(key) for name, key in HEADLINE.items()}}


def write_csv(path: str, rows: list[dict]) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)


def markdown_table(rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> str:
  """Rows as a Markdown table of `columns`; floats to 4 significant digits."""
  lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
  for row in rows:
    cells = [f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))
             for v in (row.get(c) for c in columns)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def save_plots(path: str, rows: list[dict]) -> None:
  """One panel per headline metric: metric against corruption rate, a line per
  (model, arm); dirty lines solid, cleaned dashed."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  metrics = [m for m in HEADLINE if any(r[m] is not None for r in rows)]
  fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
  series = sorted({(r["model"], r["arm"]) for r in rows})
  for ax, metric in zip(axes[0], metrics):
    for model, arm in series:
      points = sorted((r["rate"], r[metric]) for r in rows
                      if r["model"] == model and r["arm"] == arm and r[metric] is not None)
      if points:
        ax.plot(*zip(*points), marker="o", linestyle="-" if arm == "dirty" else "--",
                label=f"{model} {arm}")
    ax.set(title=metric, xlabel="corruption rate")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
