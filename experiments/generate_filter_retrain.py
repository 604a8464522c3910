"""Generate, filter, retrain: do a conditional generator's samples help a classifier that
has few labelled images (aigc_jax/quality/augmentation.py)?

  python -m experiments.generate_filter_retrain --generator=runs/cgan_s0 \
      --generator=runs/cgan_s1 --output=augmentation.json [--real_examples=1000]
For each --generator (a conditional run's folder), three classifiers are trained and scored
on the run's test split: one on --real_examples balanced real training images, one on those
plus --num_samples balanced samples, one on those plus only the samples the first classifier
assigns to their requested class with p >= --min_confidence. The real subset and the
classifiers' seeds (--seed) are the same for every generator, so several generators of one
recipe (different training seeds) measure how much the answer depends on the generator's
seed, and a rerun at another --seed how much it depends on the subset and the classifiers;
the report gives each generator's accuracies and, per accuracy, their mean and range.
"""

import json

import numpy as np
from absl import app, flags, logging

from aigc_jax.data.sources import config_split
from aigc_jax.quality.augmentation import augmentation_accuracies, balanced_subset
from aigc_jax.train.restore import generate_images, requested_labels, restore_run
from experiments import cli

_GENERATORS = flags.DEFINE_multi_string("generator", None, "A conditional image run's folder "
                                        "(repeat for several).")
_OUTPUT = flags.DEFINE_string("output", None, "JSON report to write.")
_REAL = flags.DEFINE_integer("real_examples", 1000, "Labelled real training images.",
                             lower_bound=10)
_NUM = flags.DEFINE_integer("num_samples", 10_000, "Generated images per generator.",
                            lower_bound=1)
_MIN_CONFIDENCE = flags.DEFINE_float("min_confidence", 0.9, "Quality filter threshold.")
_SEED = flags.DEFINE_integer("seed", 0, "Draws the real subset and seeds the classifiers.")
_EPOCHS = flags.DEFINE_integer("epochs", 20, "Epochs over the real images (the larger sets get "
                               "as many steps).", lower_bound=1)
flags.mark_flags_as_required(["generator", "output"])

ACCURACIES = ("accuracy_real", "accuracy_real_plus_generated", "accuracy_real_plus_filtered")


def one_generator(workdir: str) -> dict:
  """The three accuracies with `workdir`'s class-conditional samples."""
  run = restore_run(workdir)
  labels = requested_labels(run, _NUM.value, balanced=True)  # Refuses unconditional runs.
  train = config_split(run.config, run.config.data.split)
  test = config_split(run.config, run.config.data.test_split)
  samples = generate_images(run, len(labels), seed=1, labels=labels)
  real = balanced_subset(train, _REAL.value, seed=_SEED.value)
  report = augmentation_accuracies(real, test, samples, labels, epochs=_EPOCHS.value,
                                   min_confidence=_MIN_CONFIDENCE.value, seed=_SEED.value,
                                   log=logging.info)
  return {"generator": workdir, "step": run.step, "seed": _SEED.value, **report}


def summary(reports: list[dict]) -> dict:
  """Each accuracy's mean, lowest and highest over the generators."""
  values = {name: [r[name] for r in reports] for name in (*ACCURACIES, "kept_share")}
  return {name: {"mean": float(np.mean(v)), "lo": min(v), "hi": max(v)}
          for name, v in values.items()}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  reports = [one_generator(workdir) for workdir in _GENERATORS.value]
  result = {"generators": reports, "summary": summary(reports)}
  with open(_OUTPUT.value, "w") as f:
    json.dump(result, f, indent=2)
  cli.print_report(result["summary"])


if __name__ == "__main__":
  cli.run(main)
