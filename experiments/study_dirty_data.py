"""The dirty-data study: how corruption moves generation metrics, and what cleaning wins back.

  python -m experiments.study_dirty_data --workdir=runs/study [--variant=quick|default]
For each corruption rate r (spread evenly over --kinds) and each model (conditional MLP GAN
and conditional VAE on MNIST; the character GPT on Tiny Shakespeare with --text_kinds):
train on the dirty split, run experiments.clean_data on it (images: with the dirty VAE's
ELBO as an outlier score), train again without the excluded ids, and evaluate both with
experiments.evaluate. Then generate-filter-retrain: a classifier on
--augment_real labelled images, with and without the clean cGAN's samples, filtered or not.
Every step is the ordinary CLI run as a subprocess (listed in WORKDIR/commands.sh); a step
whose output exists is skipped, so a killed study resumes where it stopped.
Writes WORKDIR/study.csv, study.md, study.png and augmentation.json.
"""

import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np
from absl import app, flags, logging

from aigc_jax.data.sources import load_split
from aigc_jax.quality.augmentation import augmentation_accuracies, balanced_subset
from aigc_jax.train.restore import generate_images, restore_run
from experiments import cli
from experiments.study_report import (corruption_spec, markdown_table, save_plots, study_row,
                                      write_csv)

VARIANTS = {
    # Budgets on the 2-core CPU: default about an hour, quick a few minutes.
    "default": {"rates": (0.0, 0.1, 0.2, 0.4), "steps": {"cgan": 3000, "cvae": 3000,
                "char_gpt": 1000}, "num_samples": 10_000, "cv_folds": 4, "cv_epochs": 2,
                "augment_samples": 10_000},
    "quick": {"rates": (0.0, 0.4), "steps": {"cgan": 400, "cvae": 400, "char_gpt": 150},
              "num_samples": 2000, "cv_folds": 2, "cv_epochs": 1, "augment_samples": 2000},
}
# Models per data kind, and the cleaning config of that data.
MODELS = {"images": {"cgan": "experiments/configs/cgan.py:mlp_mnist",
                     "cvae": "experiments/configs/vae.py:cvae_mnist"},
          "text": {"char_gpt": "experiments/configs/char_gpt.py:cpu"}}
CLEAN_CONFIGS = {"images": "experiments/configs/clean.py:mnist",
                 "text": "experiments/configs/clean.py:shakespeare"}

_WORKDIR = flags.DEFINE_string("workdir", None, "Study folder.")
_VARIANT = flags.DEFINE_enum("variant", "default", list(VARIANTS), "Budget.")
_KINDS = flags.DEFINE_list("kinds", ["symmetric_labels", "out_of_distribution", "pixel_noise"],
                           "Corruption kinds; rate r puts r / len(kinds) of the split in each.")
_TEXT_KINDS = flags.DEFINE_list("text_kinds", ["garbage_lines", "boilerplate", "char_noise"],
                                "Text corruption kinds for the character GPT (empty: no text).")
_OOD_SOURCE = flags.DEFINE_string("ood_source", "fashion_mnist", "out_of_distribution images.")
_CLASSIFIER_DIR = flags.DEFINE_string("classifier_dir", "runs/classifiers/mnist",
                                      "Feature classifier for every evaluation.")
_AUGMENT_REAL = flags.DEFINE_integer("augment_real", 1000, "Labelled real images for the "
                                     "generate-filter-retrain classifier.", lower_bound=10)
_MIN_CONFIDENCE = flags.DEFINE_float("min_confidence", 0.9, "Quality filter threshold.")
flags.mark_flags_as_required(["workdir"])


def run_step(args: list[str], done_file: str, commands: str) -> None:
  """Runs `python -m args...` unless done_file exists; appends the command to commands.sh."""
  line = shlex.join(["python", "-m", *args])
  with open(commands, "a") as f:
    f.write(line + "\n")
  if os.path.exists(done_file):
    logging.info("Done already (%s): %s", done_file, line)
    return
  logging.info("Running: %s", line)
  start = time.perf_counter()
  result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
  if result.returncode:
    raise RuntimeError(f"Study step failed ({line}):\n{result.stderr[-4000:]}")
  logging.info("  took %.0f s", time.perf_counter() - start)


def latest_eval(run_dir: str) -> dict:
  paths = sorted(os.listdir(os.path.join(run_dir, "eval")))
  with open(os.path.join(run_dir, "eval", [p for p in paths if p.endswith(".json")][-1])) as f:
    return json.load(f)


def run_rate(rate: float, data_kind: str, kinds: list[str], budget: dict, root: str,
             commands: str) -> list[dict]:
  """Dirty runs, cleaning, cleaned runs and their evaluations at one corruption rate."""
  data_flags = [f"--config.data.corrupt={corruption_spec(rate, kinds)}"]
  if data_kind == "images":
    data_flags.append(f"--config.data.ood_source={_OOD_SOURCE.value}")
  folder = os.path.join(root, f"{data_kind}_rate_{rate:g}")
  clean_dir = os.path.join(folder, "clean")
  arms = {"dirty": [], "cleaned": [f"--config.data.exclude={clean_dir}/exclude.npy"]}
  for arm, exclude_flags in arms.items():
    if arm == "cleaned":
      clean_flags = [f"--config.cv_folds={budget['cv_folds']}",
                     f"--config.cv_epochs={budget['cv_epochs']}",
                     f"--vae_workdir={folder}/cvae_dirty"] if data_kind == "images" else []
      run_step(["experiments.clean_data", f"--config={CLEAN_CONFIGS[data_kind]}",
                f"--workdir={clean_dir}", *data_flags, *clean_flags],
               os.path.join(clean_dir, "report.json"), commands)
    for model, config in MODELS[data_kind].items():
      run_dir, steps = os.path.join(folder, f"{model}_{arm}"), budget["steps"][model]
      run_step(["experiments.train", f"--config={config}", f"--workdir={run_dir}", *data_flags,
                *exclude_flags, f"--config.num_steps={steps}", f"--config.checkpoint_every={steps}",
                f"--config.sample_every={steps}", "--config.eval_every=0"],
               os.path.join(run_dir, "checkpoints", str(steps)), commands)
      run_step(["experiments.evaluate", f"--workdir={run_dir}",
                f"--num_samples={budget['num_samples']}", "--iwae_k=1", "--num_examples=1000",
                f"--classifier_dir={_CLASSIFIER_DIR.value}"],
               os.path.join(run_dir, "eval", f"step_{steps}.json"), commands)
  with open(os.path.join(clean_dir, "report.json")) as f:
    cleaning = json.load(f)
  rows = []
  for arm in arms:
    kept = cleaning["num_items"] - (cleaning["exclude_count"] if arm == "cleaned" else 0)
    rows += [study_row(model, rate, arm, kept, latest_eval(os.path.join(folder, f"{model}_{arm}")))
             for model in MODELS[data_kind]]
  return rows


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  budget, root = VARIANTS[_VARIANT.value], _WORKDIR.value
  os.makedirs(root, exist_ok=True)
  commands = os.path.join(root, "commands.sh")
  open(commands, "w").close()
  rows = []
  for data_kind, kinds in (("images", _KINDS.value), ("text", _TEXT_KINDS.value)):
    for rate in budget["rates"] if kinds else ():
      rows += run_rate(rate, data_kind, kinds, budget, root, commands)
      write_csv(os.path.join(root, "study.csv"), rows)
  table = markdown_table(rows)
  with open(os.path.join(root, "study.md"), "w") as f:
    f.write(f"Corruption kinds {_KINDS.value}, budget {_VARIANT.value}: {budget}\n\n{table}")
  save_plots(os.path.join(root, "study.png"), rows)
  print(table)
  augmentation = generate_filter_retrain(os.path.join(root, "images_rate_0", "cgan_dirty"),
                                         budget)
  with open(os.path.join(root, "augmentation.json"), "w") as f:
    json.dump(augmentation, f, indent=2)
  cli.print_report({"augmentation": augmentation})


def generate_filter_retrain(cgan_dir: str, budget: dict) -> dict:
  """The augmentation experiment with the cGAN trained on clean MNIST."""
  run = restore_run(cgan_dir)
  train, test = load_split(run.config.data.name, "train"), load_split(run.config.data.name, "test")
  real = balanced_subset(train, _AUGMENT_REAL.value, seed=0)
  labels = np.arange(budget["augment_samples"]) % train.num_classes
  samples = generate_images(run, len(labels), seed=1, labels=labels)
  return augmentation_accuracies(real, test, samples, labels, epochs=20,
                                 min_confidence=_MIN_CONFIDENCE.value, log=logging.info)


if __name__ == "__main__":
  cli.run(main)
