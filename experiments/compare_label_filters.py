"""Label-issue filters and Datalab's detectors, side by side on clean_data's own outputs.

  python -m experiments.compare_label_filters --clean_dir=runs/clean_a [--clean_dir=...] \
      [--datalab] [--output=comparison.md]
Each --clean_dir is a finished `experiments.clean_data` run on a corrupted split: its
cross-validated probabilities (out_of_sample_probs.npy), ground truth (corruption.npz)
and report.json. The dirty split is rebuilt from the report's settings (corruption is
deterministic), then every cleanlab filter is scored against the flipped labels on the
*same* probabilities: precision, recall, flagged, seconds. With --datalab, cleanlab's
Datalab (needs `pip install 'cleanlab[datalab]'`) also runs its outlier, near-duplicate,
non-IID and class-imbalance checks on the same probabilities and the project's pixel
embedding, scored beside the project's detectors from report.json.
"""

import json
import os
import time

import numpy as np
from absl import app, flags, logging
from ml_collections import ConfigDict

from aigc_jax.data.config import data_config
from aigc_jax.data.sources import config_split
from aigc_jax.data.training_split import dirty_split
from aigc_jax.quality import clean, duplicates, label_issues
from experiments import cli

_CLEAN_DIRS = flags.DEFINE_multi_string("clean_dir", None, "A finished clean_data workdir.")
_DATALAB = flags.DEFINE_bool("datalab", False, "Also run cleanlab's Datalab detectors.")
_EMBEDDING_DIMS = flags.DEFINE_integer("embedding_dims", 64, "Pixel-embedding axes given to "
                                       "Datalab (clean.py's near-duplicate setting).")
_OUTPUT = flags.DEFINE_string("output", None, "Markdown file for the tables.")
flags.mark_flags_as_required(["clean_dir"])

# Datalab issue type -> the project detector of report.json meant for the same dirt.
DATALAB_TYPES = {"outlier": "outliers", "near_duplicate": "near_duplicates",
                 "non_iid": None, "class_imbalance": None}


def rebuild(report: dict):
  """The dirty split and ground truth a clean_data run saw, from its report."""
  config = ConfigDict({"data": data_config()})
  config.data.update(name=report["dataset"], split=report["split"],
                     corrupt=report["corrupt"], corrupt_seed=report["corrupt_seed"],
                     ood_source=report.get("ood_source"))
  clean_split = config_split(config, report["split"])
  data, truth = dirty_split(config, clean_split, log=logging.info)
  return data, truth, clean_split.labels


def filter_rows(labels, true_labels, probs, truth) -> list[dict]:
  expected = clean.truth_ids(truth, clean.TARGETS["label_issues"])
  rows = []
  for method in label_issues.FILTERS:
    start = time.perf_counter()
    issues = label_issues.find_label_issues(labels, probs, method)
    seconds = time.perf_counter() - start
    rows.append({"method": method, "flagged": len(issues), "seconds": seconds,
                 **clean.precision_recall(issues, expected)})
  accuracy = {"given": float(np.mean(probs.argmax(1) == labels)),
              "true": float(np.mean(probs.argmax(1) == true_labels))}
  return rows, accuracy


def datalab_rows(data, probs, truth, report) -> list[dict]:
  from cleanlab import Datalab  # Optional: cleanlab[datalab].

  embedding = duplicates.pixel_embedding(data.images, _EMBEDDING_DIMS.value)
  lab = Datalab(data={"label": data.labels}, label_name="label", verbosity=0)
  start = time.perf_counter()
  lab.find_issues(features=embedding, pred_probs=probs,
                  issue_types={kind: {} for kind in DATALAB_TYPES})
  seconds = time.perf_counter() - start
  rows = []
  for kind, ours in DATALAB_TYPES.items():
    flagged = np.flatnonzero(lab.get_issues(kind)[f"is_{kind}_issue"].to_numpy())
    row = {"issue": kind, "datalab_flagged": len(flagged), "datalab_seconds_all": seconds}
    if ours is not None:
      expected = clean.truth_ids(truth, clean.TARGETS[ours])
      row["datalab"] = clean.precision_recall(flagged, expected)
      mine = report["detectors"].get(ours, {})
      row["project"] = {**mine.get("vs_ground_truth", {}), "flagged": mine.get("flagged")}
    rows.append(row)
  return rows


def _fmt(x) -> str:
  return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else f"{x:,}"


def summary(results: list[dict]) -> str:
  """One table per (dataset, corruption): every filter's mean over the runs (the corrupt
  seeds), with the range across them."""
  groups = {}
  for r in results:
    groups.setdefault((r["dataset"], r["corrupt"]), []).append(r)
  lines = []
  for (dataset, corrupt), runs in groups.items():
    seeds = ", ".join(str(r["corrupt_seed"]) for r in runs)
    lines += [f"### {dataset}, `{corrupt}`: mean (range) over corrupt_seed {seeds}", "",
              "| cleanlab filter_by | precision | recall | flagged | seconds |",
              "|---|---|---|---|---|"]
    for i, method in enumerate(label_issues.FILTERS):
      rows = [r["filters"][i] for r in runs]
      cells = []
      for key, form in (("precision", ".3f"), ("recall", ".3f"), ("flagged", ",.0f"),
                        ("seconds", ".2f")):
        values = [row[key] for row in rows]
        cells.append(f"{np.mean(values):{form}} ({min(values):{form}}-{max(values):{form}})"
                     if len(values) > 1 else f"{values[0]:{form}}")
      lines.append(f"| {method} | " + " | ".join(cells) + " |")
    accuracy = [r["accuracy"]["true"] for r in runs]
    lines += ["", f"Out-of-sample accuracy on the true labels: {np.mean(accuracy):.3f}.", ""]
  return "\n".join(lines)


def markdown(results: list[dict]) -> str:
  lines = []
  for r in results:
    lines += [f"### {r['dir']}: {r['dataset']}, `{r['corrupt']}`, corrupt_seed "
              f"{r['corrupt_seed']}", "",
              f"Out-of-sample accuracy on the given labels {r['accuracy']['given']:.3f}, "
              f"on the true labels {r['accuracy']['true']:.3f}.", "",
              "| cleanlab filter_by | precision | recall | flagged | seconds |",
              "|---|---|---|---|---|"]
    lines += [f"| {row['method']} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | "
              f"{row['flagged']:,} | {row['seconds']:.2f} |" for row in r["filters"]]
    if r.get("datalab"):
      lines += ["", "| issue | Datalab P / R / flagged | project P / R / flagged |",
                "|---|---|---|"]
      for row in r["datalab"]:
        dl, ours = row.get("datalab", {}), row.get("project", {})
        lines.append(f"| {row['issue']} | {_fmt(dl.get('precision'))} / "
                     f"{_fmt(dl.get('recall'))} / {row['datalab_flagged']:,} | "
                     f"{_fmt(ours.get('precision'))} / {_fmt(ours.get('recall'))} / "
                     f"{_fmt(ours.get('flagged'))} |")
    lines.append("")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  results = []
  for directory in _CLEAN_DIRS.value:
    with open(os.path.join(directory, "report.json")) as f:
      report = json.load(f)
    if not report["corrupt"]:
      raise app.UsageError(f"{directory} was cleaned without --config.data.corrupt: there "
                           "is no ground truth to score against.")
    data, truth, true_labels = rebuild(report)
    probs = np.load(os.path.join(directory, "out_of_sample_probs.npy"))
    rows, accuracy = filter_rows(data.labels, true_labels, probs, truth)
    result = {"dir": directory, "dataset": report["dataset"], "corrupt": report["corrupt"],
              "corrupt_seed": report["corrupt_seed"], "accuracy": accuracy, "filters": rows}
    if _DATALAB.value:
      result["datalab"] = datalab_rows(data, probs, truth, report)
    results.append(result)
  text = summary(results) + "\n## Each run\n\n" + markdown(results)
  print(text)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      f.write(text)
    with open(os.path.splitext(_OUTPUT.value)[0] + ".json", "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
