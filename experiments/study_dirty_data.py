"""The dirty-data study: how corruption moves generation metrics, and what cleaning wins back.

  python -m experiments.study_dirty_data --workdir=runs/study [--variant=quick|default]
For each case -- a corruption rate spread evenly over --kinds, and --mix, a mix of kinds
the detectors were not tuned on -- and each model (the recipes of cgan.py:mnist and
vae.py:cvae_mnist on MNIST; the character GPT on Tiny Shakespeare with --text_kinds): train
on the dirty split at every --seeds, run experiments.clean_data on it once (images: with
the first seed's dirty VAE's ELBO as an outlier score), train again without the excluded
ids at every seed, and evaluate every run with experiments.evaluate. The dirty split is
the same for every seed (data.corrupt_seed stays 0), so the seeds measure training noise.
Then generate-filter-retrain (experiments/generate_filter_retrain.py): a classifier on
--augment_real labelled images, with and without the samples of the clean cGAN of every
seed, filtered or not.
Every step is the ordinary CLI run as a subprocess (listed in WORKDIR/commands.sh); a step
whose output exists is skipped, so a killed study resumes where it stopped.
Writes WORKDIR/study.csv (one row per run), study.md (mean and range over the seeds, and
the share of the damage that cleaning wins back), study.png and augmentation.json.
"""

import json
import os
import shlex
import subprocess
import sys
import time

from absl import app, flags, logging

from aigc_jax.data.corrupt import parse_spec
from experiments import cli
from experiments.study_plan import CLEAN_CONFIGS, MODELS, VARIANTS, model_flags
from experiments.study_report import (corruption_spec, save_plots, study_row, summarise,
                                      summary_table, won_back, won_back_table, write_csv)

_WORKDIR = flags.DEFINE_string("workdir", None, "Study folder.")
_VARIANT = flags.DEFINE_enum("variant", "default", list(VARIANTS), "Budget.")
_RATES = flags.DEFINE_list("rates", None, "Corruption rates; default the variant's.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "Training seeds of every cell.")
_KINDS = flags.DEFINE_list("kinds", ["symmetric_labels", "out_of_distribution", "pixel_noise"],
                           "Image corruption kinds; rate r puts r / len(kinds) of the split in "
                           "each (empty: no even image cases).")
_MIX = flags.DEFINE_string("mix", "class_labels=0.3,blur=0.05,occlusion=0.05",
                           "Images: a data.corrupt spec the detectors were not tuned on, run "
                           "as one more case (empty: none).")
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


def training_seeds() -> list[int]:
  """--seeds as numbers, so run folders are named the same however a seed is written."""
  return [int(seed) for seed in _SEEDS.value]


def run_case(case: str, rate: float, spec: str, data_kind: str, budget: dict, root: str,
             commands: str) -> list[dict]:
  """Dirty runs at every seed, one cleaning, cleaned runs at every seed, and their
  evaluations, for one corruption spec."""
  data_flags = [f"--config.data.corrupt={spec}"]
  if data_kind == "images":
    data_flags.append(f"--config.data.ood_source={_OOD_SOURCE.value}")
  folder = os.path.join(root, f"{data_kind}_{case}" if case == "mix" else
                        f"{data_kind}_rate_{rate:g}")
  clean_dir = os.path.join(folder, "clean")
  arms = {"dirty": [], "cleaned": [f"--config.data.exclude={clean_dir}/exclude.npy"]}
  seeds = training_seeds()
  for arm, exclude_flags in arms.items():
    if arm == "cleaned":
      clean_flags = [f"--config.cv_folds={budget['cv_folds']}",
                     f"--config.cv_epochs={budget['cv_epochs']}",
                     f"--vae_workdir={folder}/cvae_dirty_seed{seeds[0]}"
                     ] if data_kind == "images" else []
      run_step(["experiments.clean_data", f"--config={CLEAN_CONFIGS[data_kind]}",
                f"--workdir={clean_dir}", *data_flags, *clean_flags],
               os.path.join(clean_dir, "report.json"), commands)
    for seed in seeds:
      for model, config in MODELS[data_kind].items():
        run_dir = os.path.join(folder, f"{model}_{arm}_seed{seed}")
        steps = budget["steps"][model]
        run_step(["experiments.train", f"--config={config}", f"--workdir={run_dir}",
                  *data_flags, *exclude_flags, *model_flags(model, budget),
                  f"--config.seed={seed}"],
                 os.path.join(run_dir, "checkpoints", str(steps)), commands)
        run_step(["experiments.evaluate", f"--workdir={run_dir}",
                  f"--num_samples={budget['num_samples']}", "--iwae_k=1", "--num_examples=1000",
                  f"--classifier_dir={_CLASSIFIER_DIR.value}"],
                 os.path.join(run_dir, "eval", f"step_{steps}.json"), commands)
  with open(os.path.join(clean_dir, "report.json")) as f:
    cleaning = json.load(f)
  return [study_row(model, case, rate, arm, seed,
                    cleaning["num_items"] - (cleaning["exclude_count"] if arm == "cleaned" else 0),
                    latest_eval(os.path.join(folder, f"{model}_{arm}_seed{seed}")))
          for arm in arms for seed in seeds for model in MODELS[data_kind]]


def study_cases(budget: dict) -> list[tuple[str, str, float, str]]:
  """(data kind, case, total rate, data.corrupt spec) in the order they run: the even
  rates of images, the image mix, then the even rates of text."""
  rates = [float(r) for r in _RATES.value] if _RATES.value else budget["rates"]
  cases = [("images", "even", r, corruption_spec(r, _KINDS.value)) for r in rates
           if _KINDS.value]
  if _MIX.value:
    cases.append(("images", "mix", sum(rate for _, rate in parse_spec(_MIX.value)), _MIX.value))
  if _TEXT_KINDS.value:
    cases += [("text", "even", r, corruption_spec(r, _TEXT_KINDS.value)) for r in rates]
  return cases


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  budget, root = VARIANTS[_VARIANT.value], _WORKDIR.value
  os.makedirs(root, exist_ok=True)
  commands = os.path.join(root, "commands.sh")
  open(commands, "w").close()
  rows, augmentation_path = [], os.path.join(root, "augmentation.json")
  for data_kind, case, rate, spec in study_cases(budget):
    rows += run_case(case, rate, spec, data_kind, budget, root, commands)
    write_csv(os.path.join(root, "study.csv"), rows)
    if data_kind == "images" and rate == 0:
      generators = [f"--generator={root}/images_rate_0/cgan_dirty_seed{seed}"
                    for seed in training_seeds()]
      run_step(["experiments.generate_filter_retrain", *generators,
                f"--output={augmentation_path}", f"--real_examples={_AUGMENT_REAL.value}",
                f"--num_samples={budget['augment_samples']}",
                f"--min_confidence={_MIN_CONFIDENCE.value}"], augmentation_path, commands)
  summary = summarise(rows)
  tables = summary_table(summary) + "\nShare of the damage won back:\n\n" + won_back_table(
      won_back(summary))
  with open(os.path.join(root, "study.md"), "w") as f:
    f.write(f"Kinds {_KINDS.value}, mix {_MIX.value!r}, seeds {training_seeds()}, budget "
            f"{_VARIANT.value}: {budget}\n\n{tables}")
  save_plots(os.path.join(root, "study.png"), summary)
  print(tables)
  if os.path.exists(augmentation_path):
    with open(augmentation_path) as f:
      cli.print_report({"augmentation": json.load(f)["summary"]})


if __name__ == "__main__":
  cli.run(main)
