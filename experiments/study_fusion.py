"""The fusion study: what mixing several generators, vote filtering and discriminator
rejection sampling do to hallucination, fidelity, diversity and compute (docs/fusion.md).

  python -m experiments.study_fusion --workdir=runs/fusion/cgan_s0 \\
      --workdir=runs/fusion/cgan_s1 --workdir=runs/fusion/cgan_s2 --other=runs/fusion/cvae \\
      --output_dir=runs/fusion/study --classifier_dir=runs/classifiers/mnist

Rows, each --num_samples images scored by experiments.evaluate's own code in the feature
space of the first run's dataset:
- every --workdir alone: plain, vote-filtered and DRS-filtered (the spread across them is
  the spread across training seeds);
- all --workdir fused: an even mixture, vote and DRS;
- --other (another architecture, e.g. the cVAE) alone, plain and voted, and mixed with
  the first --workdir, plain and voted.
Writes ROW.npy (+ .labels.npy, .fusion.json, .eval.json) per row, table.md, rows.csv and
fusion.png to --output_dir; a row already scored there is read back, so a killed study
resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
from absl import app, flags, logging

from aigc_jax.metrics.compare_runs import flatten
from aigc_jax.metrics.run_evaluation import EvalOptions, evaluate_samples
from aigc_jax.plotting import pyplot
from aigc_jax.quality.fusion import FusionOptions, draw_fused
from aigc_jax.quality.judges import judges_for_run
from aigc_jax.train.restore import requested_labels, restore_run
from experiments import cli
from experiments.study_report import markdown_table

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "Runs of one recipe, different seeds.")
_OTHER = flags.DEFINE_string("other", None, "A run of another architecture (optional).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where rows, table and plot go.")
_CLASSIFIER_DIR = flags.DEFINE_string("classifier_dir", None, "Evaluation feature network "
                                      "folder; default classifiers/DATASET beside the run.")
_NUM = flags.DEFINE_integer("num_samples", 10_000, "Images per row.", lower_bound=1)
_NUM_JUDGES = flags.DEFINE_integer("num_judges", 3, "Judges of the vote.", lower_bound=1)
_CONFIDENT = flags.DEFINE_float("confident", 0.9, "vote: probability a judge's vote needs.")
_DRS_PERCENTILE = flags.DEFINE_float("drs_percentile", 95.0, "drs: percentile of F for gamma.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling and evaluation seed.")
flags.mark_flags_as_required(["workdir", "output_dir"])

HEADLINE = {
    "fid": "samples.fid", "precision": "samples.precision", "recall": "samples.recall",
    "coverage": "samples.coverage", "class_accuracy": "samples.class_conditional_accuracy",
    "off_manifold": "samples.hallucination_off_manifold",
    "unassignable": "samples.hallucination_unassignable",
    "near_copies": "samples.near_copy_share",
    "draws_per_kept": "fusion.draws_per_kept", "seconds": "fusion.seconds",
}
COLUMNS = ("row", "runs", "strategy", *HEADLINE)


def study_rows(workdirs: list[str], other: str | None) -> list[tuple[str, list[str], str]]:
  """(row name, runs, strategy) for every row of the study."""
  rows = []
  for index, workdir in enumerate(workdirs):
    rows += [(f"seed{index}_{s}", [workdir], s) for s in ("plain", "vote", "drs")]
  rows += [(f"all{len(workdirs)}_{s}", workdirs, s) for s in ("mixture", "vote", "drs")]
  if other:
    rows += [(f"other_{s}", [other], s) for s in ("plain", "vote")]
    rows += [(f"seed0_other_{s}", [workdirs[0], other], s) for s in ("mixture", "vote")]
  return rows


def run_row(name: str, workdirs: list[str], strategy: str, judges, output_dir: str) -> dict:
  """Draws and scores one row, or reads it back if an earlier study already did."""
  stem = os.path.join(output_dir, name)
  if not os.path.isfile(stem + ".eval.json"):
    runs = [restore_run(w) for w in workdirs]
    labels = requested_labels(runs[0], _NUM.value)
    options = FusionOptions(strategy="mixture" if strategy == "plain" else strategy,
                            min_votes=_NUM_JUDGES.value, confident=_CONFIDENT.value,
                            drs_percentile=_DRS_PERCENTILE.value)
    images, report = draw_fused(runs, workdirs, _NUM.value, labels, options,
                                judges=judges if strategy == "vote" else None,
                                seed=_SEED.value, log=logging.info)
    np.save(stem + ".npy", images)
    if labels is not None:
      np.save(stem + ".labels.npy", labels)
    with open(stem + ".fusion.json", "w") as f:
      json.dump(report, f, indent=2)
    evaluate_samples(workdirs[0], stem + ".npy",
                     EvalOptions(seed=_SEED.value, classifier_dir=_CLASSIFIER_DIR.value))
  with open(stem + ".eval.json") as f:
    flat = flatten(json.load(f))
  row = {"row": name, "runs": "+".join(os.path.basename(w) for w in workdirs),
         "strategy": strategy, **{k: flat.get(v) for k, v in HEADLINE.items()}}
  logging.info("%s", row)
  return row


def seed_effects(rows: list[dict], num_seeds: int) -> str:
  """Each filter's change against plain sampling, per training seed: mean and range, so an
  effect can be read against the spread across seeds."""
  by_name = {r["row"]: r for r in rows}
  lines = ["| filter | metric | plain (mean, range) | change (mean) | change range |",
           "|---|---|---|---|---|"]
  for strategy in ("vote", "drs"):
    for metric in ("fid", "precision", "recall", "coverage", "class_accuracy",
                   "off_manifold", "unassignable"):
      plain = np.array([by_name[f"seed{i}_plain"][metric] for i in range(num_seeds)], float)
      change = np.array([by_name[f"seed{i}_{strategy}"][metric] for i in range(num_seeds)],
                        float) - plain
      lines.append(f"| {strategy} | {metric} | {plain.mean():.4g} ({plain.min():.4g} to "
                   f"{plain.max():.4g}) | {change.mean():+.4g} | {change.min():+.4g} to "
                   f"{change.max():+.4g} |")
  return "\n".join(lines) + "\n"


def save_plot(path: str, rows: list[dict]) -> None:
  """Left: the two hallucination rates per row; right: precision against recall."""
  plt = pyplot()
  fig, (bars, scatter) = plt.subplots(1, 2, figsize=(13, 4.5))
  positions = np.arange(len(rows))
  for offset, metric in ((-0.2, "unassignable"), (0.2, "off_manifold")):
    bars.bar(positions + offset, [r[metric] for r in rows], width=0.4, label=metric)
  bars.set_xticks(positions, [r["row"] for r in rows], rotation=70, fontsize=7)
  bars.set(title="hallucination rates (lower is better)")
  bars.legend(fontsize=8)
  markers = {"plain": "o", "mixture": "s", "vote": "^", "drs": "v"}
  for row in rows:
    scatter.scatter(row["recall"], row["precision"], marker=markers[row["strategy"]])
    scatter.annotate(row["row"], (row["recall"], row["precision"]), fontsize=6)
  scatter.set(title="precision against recall (o plain, s mixture, ^ vote, v drs)",
              xlabel="recall", ylabel="precision")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  output_dir = _OUTPUT_DIR.value
  os.makedirs(output_dir, exist_ok=True)
  judges = judges_for_run(restore_run(_WORKDIRS.value[0]), _WORKDIRS.value[0],
                          _NUM_JUDGES.value, log=logging.info)
  rows = [run_row(name, workdirs, strategy, judges, output_dir)
          for name, workdirs, strategy in study_rows(_WORKDIRS.value, _OTHER.value)]
  with open(os.path.join(output_dir, "rows.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  text = markdown_table(rows, COLUMNS) + "\n" + seed_effects(rows, len(_WORKDIRS.value))
  with open(os.path.join(output_dir, "table.md"), "w") as f:
    f.write(text)
  save_plot(os.path.join(output_dir, "fusion.png"), rows)
  print(text)


if __name__ == "__main__":
  cli.run(main)
