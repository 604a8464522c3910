"""Finding dirty training data: which detectors run, and their settings.

  python -m experiments.clean_data --config=experiments/configs/clean.py:mnist --workdir=DIR \
      [--config.data.corrupt=symmetric_labels=0.2] [--vae_workdir=RUN]
  python -m experiments.train --config=... --config.data.exclude=DIR/exclude.npy
The data keys are those of every training config (aigc_jax.data.config), so a cleaning
run and a training run given the same data.corrupt settings see the same dirty split.
No training key is here: a cleaning run has no batch size, steps or checkpoints.
Variants: mnist (default), fashion_mnist, cifar10 (the colour feature network's family
for the folds, 6 epochs each: about 30 minutes on 2 CPU cores), shakespeare (text), tiny
(tests: 2 folds, 1 epoch).
"""

from ml_collections import ConfigDict

from aigc_jax.data.config import data_config
from experiments.configs import common

VARIANTS = ("mnist", "fashion_mnist", "cifar10", "shakespeare", "tiny")


def get_config(variant: str = "mnist") -> ConfigDict:
  common.check_variant("clean.py", variant, VARIANTS)
  config = ConfigDict()
  config.seed = 0  # Cross-validation folds and classifier initialisation.
  config.data = data_config()
  config.data.name = {"fashion_mnist": "fashion_mnist", "cifar10": "cifar10",
                      "shakespeare": "tiny_shakespeare"}.get(variant, "mnist")
  if variant == "shakespeare":
    config.block_size = 64  # Only to load the text; no model is trained here.
    config.detectors = "repeated_lines,garbage_lines"
    config.repeat_min_length = 20  # Shorter repeats are speaker tags, not boilerplate.
    config.repeat_min_count = 3
    config.outlier_z = 3.5  # Line surprisal robust z above which a line is garbage.
    return config
  config.detectors = "exact_duplicates,near_duplicates,label_issues,outliers"
  config.embedding_dims = 64  # Principal axes of the unit-length pixel embedding.
  config.near_duplicate_threshold = 0.2  # x median nearest-neighbour distance.
  config.cv_folds = 4  # Cross-validation folds for out-of-sample probabilities.
  config.cv_epochs = 2
  # cleanlab.filter's filter_by and cleanlab.rank's score (aigc_jax/quality/label_issues.py).
  config.label_filter = "prune_by_noise_rate"
  config.label_ranking = "self_confidence"
  config.confidence_ratio = 1 / 3  # Outlier: max p(y|x) below this x the median max p.
  config.neighbours = 20  # Outlier: k of the k-th nearest training example in features.
  config.outlier_z = 3.5  # Outlier: neighbour distance or VAE -ELBO robust z above this.
  # Outlier: brightness and unsharpness robust z too (outliers.pixel_statistics); made and
  # measured for digits on a dark background, so off for other data.
  config.pixel_statistics = variant in ("mnist", "tiny")
  config.grid_examples = 16  # Top flagged examples per detector in flagged.png.
  if variant == "tiny":
    config.cv_folds, config.cv_epochs, config.embedding_dims = 2, 1, 8
  if variant == "cifar10":
    config.cv_epochs = 6
  return config
