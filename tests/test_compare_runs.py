"""The comparison of evaluated runs: table rows, fingerprint warning, plots on disk."""

import json
import os

import pytest

from aigc_jax.metrics.compare_runs import load_reports, markdown_table, save_plots


def write_report(run_dir, step, fid, precision, fingerprint="abc"):
  os.makedirs(os.path.join(run_dir, "eval"), exist_ok=True)
  report = {"family": "gan", "step": step, "eval_seconds": 3.0,
            "samples": {"fid": fid, "precision": precision, "recall": 0.5, "num_samples": 10},
            "feature_classifier": {"fingerprint": fingerprint, "test_accuracy": 0.99}}
  with open(os.path.join(run_dir, "eval", f"step_{step}.json"), "w") as f:
    json.dump(report, f)


def test_table_shows_latest_reports_and_plots_are_written(tmp_path):
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  write_report(a, 100, 30.0, 0.4)
  write_report(a, 1000, 10.0, 0.7)
  write_report(b, 500, 20.0, 0.6, fingerprint="xyz")
  runs = {"a": load_reports(a), "b": load_reports(b)}
  assert [r["step"] for r in runs["a"]] == [100, 1000]
  table = markdown_table(runs)
  header = table.splitlines()[0]
  assert "samples.fid" in header and "eval_seconds" not in header and "num_samples" not in header
  assert "| a | 1000 | abc | 10 |" in table
  assert "different feature classifiers" in table
  paths = save_plots(runs, str(tmp_path / "cmp"))
  assert [os.path.basename(p) for p in paths] == ["cmp_metrics.png", "cmp_precision_recall.png"]
  assert all(os.path.getsize(p) > 1000 for p in paths)


def test_a_run_without_reports_says_how_to_make_them(tmp_path):
  with pytest.raises(FileNotFoundError, match="experiments.evaluate --workdir="):
    load_reports(str(tmp_path))


def test_per_class_figures_get_their_own_plot(tmp_path):
  run = str(tmp_path / "imbalanced")
  write_report(run, 10, 5.0, 0.5)
  path = os.path.join(run, "eval", "step_10.json")
  with open(path) as f:
    report = json.load(f)
  report["samples"]["per_class"] = {"representation_ratio": [0.4, 0.6, 1.2],
                                    "recall": [None, 0.5, 0.8], "verdict": "amplifies"}
  with open(path, "w") as f:
    json.dump(report, f)
  runs = {"imbalanced": load_reports(run)}
  assert "samples.per_class.verdict" not in markdown_table(runs).splitlines()[0]
  paths = save_plots(runs, str(tmp_path / "cmp"))
  assert os.path.basename(paths[-1]) == "cmp_per_class.png" and os.path.getsize(paths[-1]) > 1000
