"""The real floor of a dataset's feature space, and how far mild degradations move it.

  python -m experiments.metric_sensitivity --dataset=cifar10 [--classifier_dir=DIR]
      [--num_others=10000] [--out=FILE.json]
Loads (or trains once, as experiments.evaluate does) the dataset's feature classifier,
then scores the test split against `num_others` training images: as they are (the real
floor), blurred (sigma 1), with noise (sigma 0.1) and with 10 % replaced by one image.
Prints FID, KID, precision, recall, density and coverage per row; aigc_jax/metrics/
sensitivity.py says why.
"""

import json
import os

import numpy as np
from absl import app, flags, logging

from aigc_jax.data.sources import load_split
from aigc_jax.metrics import feature_classifier
from aigc_jax.metrics.sensitivity import sensitivity_table
from experiments import cli

_DATASET = flags.DEFINE_string("dataset", "cifar10", "TFDS image dataset.")
_CLASSIFIER_DIR = flags.DEFINE_string("classifier_dir", None,
                                      "Feature classifier folder; default runs/classifiers/"
                                      "DATASET, where experiments.evaluate keeps it.")
_NUM_OTHERS = flags.DEFINE_integer("num_others", 10_000, "Training images to score against "
                                   "the test split.", lower_bound=2)
_SEED = flags.DEFINE_integer("seed", 0, "Which training images; the noise and the repeats.")
_OUT = flags.DEFINE_string("out", None, "Also write the table as JSON here.")

COLUMNS = ("fid", "kid", "precision", "recall", "density", "coverage")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  dataset = _DATASET.value
  train, test = load_split(dataset, "train"), load_split(dataset, "test")
  directory = _CLASSIFIER_DIR.value or os.path.join("runs", "classifiers", dataset)
  model, variables, card = feature_classifier.load_or_train(directory, dataset, train, test,
                                                            log=logging.info)
  embed = lambda images: feature_classifier.features_and_probs(model, variables, images)
  rng = np.random.default_rng(_SEED.value)
  others = train.images[rng.choice(len(train.images), _NUM_OTHERS.value, replace=False)]
  table = sensitivity_table(embed, test.images, others, _SEED.value)
  print(f"{dataset}: feature classifier test accuracy {card['test_accuracy']:.4f}, "
        f"fingerprint {card['fingerprint']}; test split vs {len(others)} training images")
  print("| degradation | " + " | ".join(COLUMNS) + " |")
  print("|---|" + "---|" * len(COLUMNS))
  for name, row in table.items():
    print(f"| {name} | " + " | ".join(f"{row[c]:.4g}" for c in COLUMNS) + " |")
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump({"dataset": dataset, "feature_classifier": card, "rows": table}, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
