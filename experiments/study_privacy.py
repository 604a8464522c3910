"""The privacy study's tables and plots (docs/privacy.md), from runs already trained,
evaluated (experiments.evaluate) and audited (experiments.audit_privacy).

  python -m experiments.study_privacy --output_dir=runs/privacy/study \\
      --run=runs/privacy/cvae_epsinf --run=runs/privacy/cvae_eps8 ... \\
      --audited=runs/privacy/cvae_sub1k --audited=runs/fusion/cvae ...

--run: one row of the privacy-utility table each: epsilon spent (the run's last logged
privacy/epsilon; inf for a run without DP), its noise multiplier, training seconds, the
utility its evaluation measured and the membership-inference AUC of each attack in that
evaluation. --audited: runs whose full audit (privacy/audit_step_N.json) goes into the
ROC figure and the leakage table. Writes table.md, leakage.md, privacy_utility.png and
roc.png to --output_dir.
"""

from __future__ import annotations

import glob
import json
import math
import os

from absl import app, flags

from aigc_jax.metrics.compare_runs import load_reports
from aigc_jax.metrics.privacy_audit import save_roc_figure
from aigc_jax.plotting import pyplot
from experiments import cli
from experiments.study_report import markdown_table

_RUNS = flags.DEFINE_multi_string("run", [], "A run of the privacy-utility table.")
_AUDITED = flags.DEFINE_multi_string("audited", [], "A run with an experiments.audit_privacy "
                                     "report, for the ROC figure.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where tables and plots go.")
flags.mark_flags_as_required(["output_dir"])

UTILITY = {"neg_elbo": "neg_elbo_nats", "fid": "samples.fid",
           "class_accuracy": "samples.class_conditional_accuracy",
           "precision": "samples.precision", "recall": "samples.recall"}
ATTACKS = ("neg_elbo", "discriminator", "nearest_sample", "line_loss")
TABLE_COLUMNS = ("run", "family", "epsilon", "noise_multiplier", "steps", "batch",
                 "train_seconds", *UTILITY, *(f"auc_{a}" for a in ATTACKS))
LEAKAGE_COLUMNS = ("run", "members", "attack", "roc_auc", "auc_ci95", "tpr_at_1pct_fpr",
                   "tpr_at_0.1pct_fpr")


def _metrics(run_dir: str) -> list[dict]:
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def table_row(run_dir: str) -> dict:
  """One row: privacy spent, cost and utility of a trained, evaluated run."""
  with open(os.path.join(run_dir, "config.json")) as f:
    config = json.load(f)["config"]
  logged = _metrics(run_dir)
  spent = [m["privacy/epsilon"] for m in logged if "privacy/epsilon" in m]
  # Seconds of training: each logged rate covers the steps since the previous log line.
  rates = [(m["step"], m["steps_per_s"]) for m in logged if "steps_per_s" in m]
  seconds = sum((step - before) / rate
                for (before, _), (step, rate) in zip([(0, None)] + rates, rates))
  report = load_reports(run_dir)[-1]
  row = {"run": os.path.basename(os.path.normpath(run_dir)), "family": config["family"],
         "epsilon": spent[-1] if spent else math.inf,
         "noise_multiplier": config["dp"]["noise_multiplier"] or 0.0,
         "steps": config["num_steps"], "batch": config["batch_size"],
         "train_seconds": float(seconds)}
  row.update({name: report.get(key) for name, key in UTILITY.items()})
  row.update({f"auc_{a}": report.get(f"privacy_audit.attacks.{a}.roc_auc") for a in ATTACKS})
  return row


def newest_audit(run_dir: str) -> dict:
  paths = glob.glob(os.path.join(run_dir, "privacy", "audit_step_*.json"))
  if not paths:
    raise FileNotFoundError(f"{run_dir} has no privacy/audit_step_N.json; run python -m "
                            f"experiments.audit_privacy --workdir={run_dir} first.")
  newest = max(paths, key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
  with open(newest) as f:
    return json.load(f)


def leakage_rows(run_dir: str, audit: dict) -> list[dict]:
  name = os.path.basename(os.path.normpath(run_dir))
  return [{"run": name, "members": audit["members"].split(";")[0], "attack": attack,
           "roc_auc": r["roc_auc"], "auc_ci95": "[{:.3f}, {:.3f}]".format(*r["roc_auc_ci95"]),
           "tpr_at_1pct_fpr": r["tpr_at_1pct_fpr"], "tpr_at_0.1pct_fpr": r["tpr_at_0.1pct_fpr"]}
          for attack, r in audit["attacks"].items()]


def plot_privacy_utility(rows: list[dict], path: str) -> None:
  """Utility against epsilon per family; the non-private run drawn at the right edge."""
  plt = pyplot()
  panels = [("vae", "neg_elbo", "test -ELBO (nats)"), ("gan", "fid", "FID"),
            ("vae", "class_accuracy", "cVAE class accuracy"),
            ("gan", "class_accuracy", "cGAN class accuracy")]
  finite = [r["epsilon"] for r in rows if math.isfinite(r["epsilon"])] or [1.0]
  edge = max(finite) * 3
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
  for ax, (family, key, label) in zip(axes, panels):
    mine = sorted((r for r in rows if r["family"] == family and r.get(key) is not None),
                  key=lambda r: r["epsilon"])
    xs = [r["epsilon"] if math.isfinite(r["epsilon"]) else edge for r in mine]
    ax.plot(xs, [r[key] for r in mine], "o-")
    ax.set(xscale="log", xlabel="epsilon (delta 1e-5; right edge: no DP)", ylabel=label)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  out = _OUTPUT_DIR.value
  os.makedirs(out, exist_ok=True)
  if _RUNS.value:
    rows = [table_row(run) for run in _RUNS.value]
    with open(os.path.join(out, "table.md"), "w") as f:
      f.write(markdown_table(rows, TABLE_COLUMNS))
    plot_privacy_utility(rows, os.path.join(out, "privacy_utility.png"))
    print(markdown_table(rows, TABLE_COLUMNS))
  if _AUDITED.value:
    audits = {os.path.basename(os.path.normpath(r)): newest_audit(r) for r in _AUDITED.value}
    rows = [row for run, audit in zip(_AUDITED.value, audits.values())
            for row in leakage_rows(run, audit)]
    with open(os.path.join(out, "leakage.md"), "w") as f:
      f.write(markdown_table(rows, LEAKAGE_COLUMNS))
    save_roc_figure(audits, os.path.join(out, "roc.png"))
    print(markdown_table(rows, LEAKAGE_COLUMNS))


if __name__ == "__main__":
  cli.run(main)
