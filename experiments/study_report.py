"""Tables and plots for the dirty-data study: one row per (model, case, arm, seed).

A case is a corruption rate spread evenly over the study's kinds ("even"), or a fixed mix
of kinds the detectors were not tuned on ("mix"). An arm is "dirty" (trained on the
corrupted split) or "cleaned" (the same split minus what experiments.clean_data excluded).
Rows are flat dicts; the headline metrics come from the evaluation reports
(experiments.evaluate), so the study measures exactly what a user's own evaluation would.
Seeds are summarised as mean and range, so an effect can be read against run-to-run noise.
"""

from __future__ import annotations

import csv
import itertools

import numpy as np

from aigc_jax.metrics.compare_runs import flatten
from aigc_jax.plotting import pyplot

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
GROUP = ("model", "case", "rate", "arm")
COLUMNS = (*GROUP, "seed", "train_examples", *HEADLINE)


def corruption_spec(rate: float, kinds: list[str]) -> str:
  """A total corruption rate spread evenly over kinds, as a data.corrupt spec."""
  return ",".join(f"{kind}={rate / len(kinds):.6g}" for kind in kinds) if rate else ""


def study_row(model: str, case: str, rate: float, arm: str, seed: int, train_examples: int,
              report: dict) -> dict:
  flat = flatten(report)
  return {"model": model, "case": case, "rate": rate, "arm": arm, "seed": seed,
          "train_examples": train_examples,
          **{name: flat.get(key) for name, key in HEADLINE.items()}}


def summarise(rows: list[dict]) -> list[dict]:
  """One row per (model, case, rate, arm): each metric's mean, lowest and highest over
  the seeds (keys METRIC, METRIC_lo, METRIC_hi), and the number of seeds."""
  key = lambda r: tuple(r[g] for g in GROUP)
  summary = []
  for group, members in itertools.groupby(sorted(rows, key=key), key=key):
    members = list(members)
    row = dict(zip(GROUP, group), seeds=len(members),
               train_examples=members[0]["train_examples"])
    for metric in HEADLINE:
      values = [m[metric] for m in members if m[metric] is not None]
      if values:
        row |= {metric: float(np.mean(values)), f"{metric}_lo": min(values),
                f"{metric}_hi": max(values)}
    summary.append(row)
  return summary


def summary_table(summary: list[dict]) -> str:
  """Markdown: each metric as `mean (lowest to highest)` over the seeds."""
  metrics = [m for m in HEADLINE if any(m in r for r in summary)]
  cells = [row | {m: _mean_and_range(row, m) for m in metrics} for row in summary]
  return markdown_table(cells, (*GROUP, "seeds", "train_examples", *metrics))


def _mean_and_range(row: dict, metric: str) -> str:
  if metric not in row:
    return ""
  if row["seeds"] == 1:
    return f"{row[metric]:.4g}"
  return f"{row[metric]:.4g} ({row[metric + '_lo']:.4g} to {row[metric + '_hi']:.4g})"


def won_back(summary: list[dict]) -> list[dict]:
  """Per model, dirty case and metric: the share of the damage from dirt that cleaning
  wins back, (dirty - cleaned) / (dirty - clean), where clean is the dirty arm at rate 0.
  Damage no larger than the seeds' spread (the wider range of the two means' groups) is
  marked as noise rather than divided by."""
  by_key = {tuple(r[g] for g in GROUP): r for r in summary}
  result = []
  for row in summary:
    clean = by_key.get((row["model"], "even", 0.0, "dirty"))
    cleaned = by_key.get((row["model"], row["case"], row["rate"], "cleaned"))
    if row["arm"] != "dirty" or not row["rate"] or clean is None or cleaned is None:
      continue
    shares = {}
    for metric in HEADLINE:
      if metric not in row or metric not in clean or metric not in cleaned:
        continue
      damage = row[metric] - clean[metric]
      noise = max(_spread(row, metric), _spread(clean, metric))
      shares[metric] = None if abs(damage) <= noise else (
          (row[metric] - cleaned[metric]) / damage)
    result.append({"model": row["model"], "case": row["case"], "rate": row["rate"], **shares})
  return result


def _spread(row: dict, metric: str) -> float:
  return row[f"{metric}_hi"] - row[f"{metric}_lo"]


def won_back_table(shares: list[dict]) -> str:
  """Markdown: the share won back per metric; `noise` where dirt did no damage beyond the
  seeds' spread."""
  metrics = [m for m in HEADLINE if any(m in r for r in shares)]
  cells = [row | {m: "noise" if row[m] is None else f"{row[m]:.2f}" for m in metrics if m in row}
           for row in shares]
  return markdown_table(cells, ("model", "case", "rate", *metrics))


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


def save_plots(path: str, summary: list[dict]) -> None:
  """One panel per headline metric: the seeds' mean against the corruption rate of the
  even cases, with their range as error bars, a line per (model, arm); dirty lines solid,
  cleaned dashed. The mix case has no place on the rate axis and is left to the table."""
  plt = pyplot()

  even = [r for r in summary if r["case"] == "even"]
  metrics = [m for m in HEADLINE if any(m in r for r in even)]
  fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
  series = sorted({(r["model"], r["arm"]) for r in even})
  for ax, metric in zip(axes[0], metrics):
    for model, arm in series:
      points = sorted((r["rate"], r[metric], r[f"{metric}_lo"], r[f"{metric}_hi"])
                      for r in even if r["model"] == model and r["arm"] == arm and metric in r)
      if points:
        rates, means, lows, highs = map(np.array, zip(*points))
        ax.errorbar(rates, means, yerr=(means - lows, highs - means), marker="o", capsize=3,
                    linestyle="-" if arm == "dirty" else "--", label=f"{model} {arm}")
    ax.set(title=metric, xlabel="corruption rate")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
