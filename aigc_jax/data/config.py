"""The `config.data` keys: which dataset, which splits, and how the training split is
dirtied or cleaned. Their defaults live here and nowhere else; training and cleaning
configs (experiments/configs/) start from `data_config()`.
"""

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder


def data_config() -> ConfigDict:
  data = ConfigDict()
  data.name = "mnist"  # A TFDS name, or "image_folder".
  data.split = "train"
  data.eval_split = "test"  # Held-out split evaluated during training (model selection).
  data.test_split = "test"  # Final held-out split that experiments.evaluate reports on.
  data.data_dir = placeholder(str)  # TFDS data dir; None -> $TFDS_DATA_DIR or default.
  data.manual_dir = placeholder(str)  # Raw files; None -> $AIGC_RAW_DATA_DIR/<name>.
  data.image_folder = placeholder(str)  # ROOT/<split>/<class>/*.png for image_folder.
  # Dirty data on purpose (corrupt.py, corrupt_text.py): "kind=rate,..." e.g.
  # "symmetric_labels=0.2".
  data.corrupt = ""
  data.corrupt_seed = 0
  data.ood_source = placeholder(str)  # TFDS name for out_of_distribution images.
  data.exclude = placeholder(str)  # .npy of training ids to drop (experiments.clean_data).
  return data
