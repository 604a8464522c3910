"""The dirty-data study's pieces: specs, rows, tables, plots, generate-filter-retrain."""

import csv
import json
import subprocess

import numpy as np

from aigc_jax.data.corrupt import parse_spec
from aigc_jax.data.images import ImageData
from aigc_jax.quality import augmentation
from aigc_jax.train.loop import train_and_evaluate
from experiments import study_plan, study_report
from experiments.configs import cgan
from tests.conftest import REPO_ROOT, on_image_folder
from tests.test_cli import command


def test_rate_is_spread_evenly_over_the_kinds():
  spec = study_report.corruption_spec(0.3, ["symmetric_labels", "pixel_noise", "blur"])
  assert parse_spec(spec) == [("symmetric_labels", 0.1), ("pixel_noise", 0.1), ("blur", 0.1)]
  assert study_report.corruption_spec(0.0, ["blur"]) == ""


def _report(fid, class_accuracy):
  return {"samples": {"fid": fid, "precision": 0.7, "recall": 0.5,
                      "hallucination_off_manifold": 0.3, "hallucination_unassignable": 0.05,
                      "class_conditional_accuracy": class_accuracy}}


def test_rows_table_csv_and_plot(tmp_path):
  rows = [study_report.study_row("cvae", "even", rate, arm, seed, 60000, _report(12.5, None))
          for rate in (0.0, 0.4) for arm in ("dirty", "cleaned") for seed in (0, 1)]
  assert rows[0]["fid"] == 12.5 and rows[0]["class_accuracy"] is None
  table = study_report.markdown_table(rows)
  assert table.splitlines()[2] == (
      "| cvae | even | 0 | dirty | 0 | 60000 | 12.5 | 0.7 | 0.5 | 0.3 | 0.05 |  |  |  |")
  study_report.write_csv(str(tmp_path / "s.csv"), rows)
  with open(tmp_path / "s.csv") as f:
    assert [r["seed"] for r in csv.DictReader(f)] == ["0", "1"] * 4
  study_report.save_plots(str(tmp_path / "s.png"), study_report.summarise(rows))
  assert (tmp_path / "s.png").stat().st_size > 0


def test_seeds_are_summarised_as_mean_and_range():
  rows = [study_report.study_row("cgan", "even", 0.0, "dirty", seed, 60000, _report(fid, 0.9))
          for seed, fid in ((0, 10.0), (1, 14.0), (2, 12.0))]
  (summary,) = study_report.summarise(rows)
  assert (summary["seeds"], summary["fid"], summary["fid_lo"], summary["fid_hi"]) == (
      3, 12.0, 10.0, 14.0)
  assert "class_accuracy_lo" in summary and "val_bits_per_char" not in summary
  assert "| 12 (10 to 14) |" in study_report.summary_table([summary])


def test_share_won_back_per_metric_and_noise_where_dirt_did_no_damage():
  def runs(rate, arm, fids, accuracies):
    return [study_report.study_row("cgan", "even", rate, arm, seed, 1, _report(fid, acc))
            for seed, (fid, acc) in enumerate(zip(fids, accuracies))]
  rows = (runs(0.0, "dirty", (10, 12), (0.95, 0.97)) + runs(0.0, "cleaned", (10, 12), (0.95, 0.97))
          + runs(0.4, "dirty", (30, 32), (0.955, 0.965)) + runs(0.4, "cleaned", (15, 17), (1, 1)))
  shares = study_report.won_back(study_report.summarise(rows))
  assert [(s["rate"], s["fid"]) for s in shares] == [(0.4, 0.75)]  # (31 - 16) / (31 - 11).
  assert shares[0]["class_accuracy"] is None  # 0.96 against 0.96 +- 0.01: noise.
  table = study_report.won_back_table(shares)
  assert table.splitlines()[2].startswith("| cgan | even | 0.4 | 0.75 |") and "noise" in table


def _quadrants(n, seed):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 4, n).astype(np.int32)
  images = rng.integers(0, 40, (n, 8, 8, 1)).astype(np.uint8)
  for c in range(4):
    images[labels == c, (c // 2) * 4:(c // 2) * 4 + 4, (c % 2) * 4:(c % 2) * 4 + 4] = 220
  return ImageData(images, labels, 4)


def test_balanced_subset_takes_equal_shares_without_repeats():
  data = _quadrants(400, 0)
  subset = augmentation.balanced_subset(data, 40, seed=0)
  assert np.bincount(subset.labels).tolist() == [10, 10, 10, 10]
  assert len(np.unique(subset.images.reshape(40, -1), axis=0)) == 40


def test_quality_filter_keeps_samples_of_the_requested_class_and_drops_the_rest():
  probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98], [0.97, 0.03]])
  np.testing.assert_array_equal(
      augmentation.confident_agreement(probs, np.array([0, 0, 1, 1]), 0.9),
      [True, False, True, False])


def test_generate_filter_retrain_filters_mislabelled_samples():
  real, test = _quadrants(200, 0), _quadrants(200, 1)
  samples = _quadrants(200, 2)
  wrong = (samples.labels + 1) % 4  # "Generated" images with a consistently wrong label,
  labels = np.concatenate([samples.labels] + [wrong] * 3)  # three times as many as right.
  images = np.concatenate([samples.images] * 4).astype(np.float32) / 255
  report = augmentation.augmentation_accuracies(real, test, images, labels, epochs=40,
                                                min_confidence=0.9, log=lambda _: None)
  assert report["accuracy_real"] > 0.9
  assert 0.2 < report["kept_share"] <= 0.25  # At most the correctly labelled quarter.
  assert report["accuracy_real_plus_generated"] < 0.5 < report["accuracy_real_plus_filtered"]


def _tiny_cgan(image_folder, workdir, seed, conditional=True):
  config = on_image_folder(cgan.get_config("tiny"), image_folder)
  config.seed, config.model.conditional = seed, conditional
  train_and_evaluate(config, workdir)
  return workdir


def test_generate_filter_retrain_command_reports_every_generator_and_their_range(
    image_folder, tmp_path):
  generators = [_tiny_cgan(image_folder, str(tmp_path / f"gan{seed}"), seed) for seed in (0, 1)]
  output = tmp_path / "augmentation.json"
  result = subprocess.run(
      command("experiments.generate_filter_retrain", *[f"--generator={g}" for g in generators],
              f"--output={output}", "--real_examples=10", "--num_samples=20", "--epochs=3"),
      cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(output.read_text())
  assert [r["generator"] for r in report["generators"]] == generators
  assert all(r["real_examples"] == 10 and r["generated_examples"] == 20
             for r in report["generators"])
  # The real subset and the classifiers' seeds do not depend on the generator.
  assert report["generators"][0]["accuracy_real"] == report["generators"][1]["accuracy_real"]
  shares = [r["kept_share"] for r in report["generators"]]
  assert report["summary"]["kept_share"] == {"mean": np.mean(shares), "lo": min(shares),
                                             "hi": max(shares)}
  unconditional = _tiny_cgan(image_folder, str(tmp_path / "uncond"), 0, conditional=False)
  result = subprocess.run(
      command("experiments.generate_filter_retrain", f"--generator={unconditional}",
              f"--output={tmp_path / 'no.json'}"), cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode != 0 and "unconditional" in result.stderr
  assert not (tmp_path / "no.json").exists()


def test_study_cgan_keeps_the_settings_its_tables_were_measured_with():
  # The recipe's defaults may move on (its Adam betas did); the study's rows must not.
  flags = study_plan.model_flags("cgan", study_plan.VARIANTS["default"])
  assert {"--config.optimizer.b1=0.5", "--config.optimizer.b2=0.999",
          "--config.optimizer.decay_start=-1", "--config.num_steps=2000"} <= set(flags)
