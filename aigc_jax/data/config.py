"""The `config.data` keys: which dataset, which splits, and how the training split is
dirtied or cleaned. Their defaults and the values each may take (DATA_RULES) live here
and nowhere else; training and cleaning configs (experiments/configs/) start from
`data_config()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder

from aigc_jax.data.images import BALANCE
from aigc_jax.errors import InvalidInputError

# A rule: (does this value fit, what a fitting value is).
Rule = tuple[Callable[[Any], bool], str]


def data_config() -> ConfigDict:
  data = ConfigDict()
  data.name = "mnist"  # A TFDS name, "image_folder" or "text_file".
  data.split = "train"
  data.eval_split = "test"  # Held-out split evaluated during training (model selection).
  data.test_split = "test"  # Final held-out split that experiments.evaluate reports on.
  # > 0: hold this seeded share of `split` out of training, as the split "held_out" (for
  # datasets without a test split: --config.data.test_split=held_out); for text_file, the
  # share of lines held out as "validation" and "test".
  data.eval_fraction = 0.0
  data.split_seed = 0  # Which examples eval_fraction holds out.
  data.data_dir = placeholder(str)  # TFDS data dir; None -> $TFDS_DATA_DIR or default.
  data.manual_dir = placeholder(str)  # Raw files; None -> $AIGC_RAW_DATA_DIR/<name>.
  data.image_folder = placeholder(str)  # ROOT/<split>/<class>/*.png for image_folder.
  data.image_size = placeholder(int)  # image_folder: resize every image to S x S.
  data.channels = placeholder(int)  # image_folder: convert to 1 (grey) or 3 (RGB).
  data.text_file = placeholder(str)  # text_file: a UTF-8 corpus; eval_fraction of its lines
  # are held out as the validation and test splits.
  # Dirty data on purpose (corrupt.py, corrupt_text.py): "kind=rate,..." e.g.
  # "symmetric_labels=0.2".
  data.corrupt = ""
  data.corrupt_seed = 0
  data.ood_source = placeholder(str)  # TFDS name for out_of_distribution images.
  data.exclude = placeholder(str)  # .npy of training ids to drop (experiments.clean_data).
  # .npy of int labels replacing the training split's own (relabelled or crowd labels).
  data.label_file = placeholder(str)
  # Against unequal classes (images.py): "none", "resample" (every class an equal share of
  # each epoch) or "reweight" (each example's loss scaled by N / (K * its class count)).
  data.balance = "none"
  # > 0: train on a seeded subset of this many items (examples, or lines of text) of the
  # split left after corruption and exclusion; their ids go to WORKDIR/members.npy, so a
  # privacy audit knows members from non-members. 0: the whole split.
  data.subset = 0
  data.subset_seed = 0
  # > 0 (GANs): train on this many k-means clusters of the training images as labels
  # instead of the dataset's own (clusters.py), so a conditional model learns without
  # labels; sample with --config.sample_labels=data to draw clusters in their shares.
  data.cluster_labels = 0
  # > 0 (conditional GANs): refine each class's label into this many k-means clusters of
  # its images; G and D condition on the finer labels, sampling still asks for classes.
  data.clusters_per_class = 0
  return data


def integer_at_least(low: int) -> Rule:
  return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low,
          f"an integer >= {low}")


def one_of(*choices: str) -> Rule:
  return (lambda v: v in choices, f"one of {list(choices)}")


NAME: Rule = (lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty name")
OPTIONAL_PATH: Rule = (lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
                       "a path, or unset")

DATA_RULES: dict[str, Rule] = {
    "name": NAME, "split": NAME, "eval_split": NAME, "test_split": NAME,
    "data_dir": OPTIONAL_PATH, "manual_dir": OPTIONAL_PATH, "image_folder": OPTIONAL_PATH,
    "corrupt_seed": integer_at_least(0), "ood_source": OPTIONAL_PATH,
    "eval_fraction": (lambda v: isinstance(v, float) and 0.0 <= v < 1.0,
                      "a fraction in [0, 1)"),
    "split_seed": integer_at_least(0),
    "exclude": OPTIONAL_PATH, "label_file": OPTIONAL_PATH, "text_file": OPTIONAL_PATH,
    "image_size": (lambda v: v is None or (isinstance(v, int) and v >= 1),
                   "a positive integer, or unset"),
    "channels": (lambda v: v in (None, 1, 3), "1 (grey), 3 (RGB), or unset"),
    "balance": one_of(*BALANCE), "subset": integer_at_least(0),
    "subset_seed": integer_at_least(0), "cluster_labels": integer_at_least(0),
    "clusters_per_class": integer_at_least(0),
}


def check_rules(config: ConfigDict, rules: dict[str, Rule], prefix: str = "") -> None:
  """Fails on the first value of `config` its rule refuses, naming key, value and rule."""
  for key, (fits, meaning) in rules.items():
    value = config[key]
    if not fits(value):
      raise InvalidInputError(f"--config.{prefix}{key}={value!r} is not valid: it must be "
                              f"{meaning}.")
