"""Judges for vote filtering: small classifiers, each trained on its own fold of the real
training split from its own seed.

A vote only removes what one judge gets wrong when the judges err independently, and a
network trained on other examples from another initialisation is the cheapest way to get
there. The judges are never the evaluation's feature network (the whole split, seed 0;
feature_classifier.py), so a filter cannot select for whatever that one network likes and
the evaluation that scores the filter stays independent of it.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from aigc_jax.data.images import ImageData
from aigc_jax.data.sources import config_split
from aigc_jax.errors import InvalidInputError
from aigc_jax.metrics import feature_classifier
from aigc_jax.metrics.feature_classifier import ClassifierSettings, default_settings
from aigc_jax.metrics.run_evaluation import default_classifier_dir

FOLD_SEED = 1234  # Which training examples each judge sees; fixed, so folds never move.


def judge_folds(num_examples: int, num_judges: int) -> list[np.ndarray]:
  """Disjoint, equal-sized (up to one) sets of training indices, one per judge."""
  if num_judges < 1 or num_judges > num_examples:
    raise InvalidInputError(f"Cannot split {num_examples} training examples among {num_judges} "
                            "judges; give --num_judges between 1 and the number of examples.")
  order = np.random.default_rng(FOLD_SEED).permutation(num_examples)
  return [np.sort(fold) for fold in np.array_split(order, num_judges)]


def judge_settings(image_shape, index: int) -> ClassifierSettings:
  """The dataset's feature-network settings with seed index + 1 (seed 0 is the evaluation
  network's)."""
  return dataclasses.replace(default_settings(image_shape), seed=index + 1)


def load_or_train_judges(directory: str, dataset: str, train: ImageData, test: ImageData,
                         num_judges: int, log=print) -> list[tuple]:
  """`num_judges` (model, variables, card) triples from DIRECTORY/judge_I, each trained
  there once on its fold (`judge_folds`) if absent."""
  judges = []
  for index, fold in enumerate(judge_folds(len(train.images), num_judges)):
    fold_data = ImageData(train.images[fold], train.labels[fold], train.num_classes)
    judges.append(feature_classifier.load_or_train(
        os.path.join(directory, f"{num_judges}_judges", f"judge_{index}"), dataset, fold_data,
        test, log=log, settings=judge_settings(train.images.shape[1:], index)))
  return judges


def judges_for_run(run, workdir: str, num_judges: int, directory: str | None = None,
                   log=print) -> list[tuple]:
  """The judges of a run's dataset (`load_or_train_judges` on its training split), from
  `directory`, by default classifiers/DATASET_judges beside the run folder."""
  dataset = run.config.data.name
  directory = directory or default_classifier_dir(workdir, f"{dataset}_judges")
  return load_or_train_judges(directory, dataset,
                              config_split(run.config, run.config.data.split),
                              config_split(run.config, run.config.data.test_split),
                              num_judges, log=log)


def judge_probabilities(judges: list[tuple], images: np.ndarray) -> np.ndarray:
  """Class probabilities of every judge for `images` in [0, 1]: (num_judges, N, K)."""
  return np.stack([feature_classifier.features_and_probs(model, variables, images)[1]
                   for model, variables, _ in judges])
