"""Finds dirty training data and writes what to exclude.

  python -m experiments.clean_data --config=experiments/configs/clean.py:mnist --workdir=DIR \
      [--config.data.corrupt=symmetric_labels=0.2,near_duplicate=0.05] [--vae_workdir=RUN]
Writes DIR/report.json (counts per detector; precision and recall against the injected
ground truth when data.corrupt is set), DIR/exclude.npy (ids for a training config's
--config.data.exclude), DIR/corruption.npz (the ground truth), the per-example scores
behind the detectors (DIR/out_of_sample_probs.npy, the cross-validated class probabilities
and the costly part; neighbour_distance.npy; neg_elbo.npy) and DIR/flagged.png (images:
one row of the most suspicious examples per detector) or DIR/flagged_lines.txt (text).
--config.data.label_file=LABELS.npy cleans a relabelled split: the label errors to find are
then the examples whose file label differs from the dataset's own.
--vae_workdir adds a VAE's per-example -ELBO to the outlier scores; the VAE should be
trained on the same (dirty) split.
"""

import json
import os

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from aigc_jax.data.image_grid import make_grid, save_png
from aigc_jax.data.sources import config_split
from aigc_jax.data.text import TextData
from aigc_jax.data.training_split import dirty_split, num_items
from aigc_jax.metrics.vae_scores import per_example_neg_elbo
from aigc_jax.quality.clean import clean
from aigc_jax.train.restore import restore_run
from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Cleaning config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the report and exclude.npy.")
_VAE_WORKDIR = flags.DEFINE_string("vae_workdir", None, "Optional VAE run on the same split: "
                                   "its per-example -ELBO joins the outlier scores.")
flags.mark_flags_as_required(["config", "workdir"])


def save_flagged_grid(path: str, images: np.ndarray, flagged: dict[str, np.ndarray],
                      per_row: int) -> None:
  """One row per detector: its `per_row` most suspicious images (blank where fewer)."""
  rows = []
  for ids in flagged.values():
    row = np.zeros((per_row, *images.shape[1:]), np.float32)
    row[:min(per_row, len(ids))] = images[ids[:per_row]] / 255.0
    rows.append(row)
  save_png(path, make_grid(np.concatenate(rows), columns=per_row))


def save_flagged_lines(path: str, lines: list[str], flagged: dict[str, np.ndarray],
                       per_detector: int = 20) -> None:
  with open(path, "w") as f:
    for name, ids in flagged.items():
      f.write(f"# {name}: {len(ids)} flagged; the first {min(per_detector, len(ids))}\n")
      f.writelines(f"{i}\t{lines[i]}\n" for i in ids[:per_detector])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  config, workdir = _CONFIG.value, _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  data, truth = dirty_split(config, config_split(config, config.data.split), workdir,
                            log=logging.info)
  logging.info("Cleaning %s/%s: %s.", config.data.name, config.data.split, data.describe())
  neg_elbo = None
  if _VAE_WORKDIR.value:
    neg_elbo = per_example_neg_elbo(restore_run(_VAE_WORKDIR.value), data)
  report, exclude, flagged, scores = clean(config, data, truth, neg_elbo, log=logging.info)
  report = {"dataset": config.data.name, "split": config.data.split,
            "label_file": config.data.label_file, "corrupt": config.data.corrupt,
            "corrupt_seed": config.data.corrupt_seed,
            "ood_source": config.data.ood_source, "num_items": num_items(data),
            "injected": truth.summary() if truth is not None else {}, **report}
  np.save(os.path.join(workdir, "exclude.npy"), exclude)
  for name, score in scores.items():
    np.save(os.path.join(workdir, f"{name}.npy"), score)
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(report, f, indent=2)
  if isinstance(data, TextData):
    save_flagged_lines(os.path.join(workdir, "flagged_lines.txt"),
                       data.spec.decode(data.tokens).split("\n"), flagged)
  elif flagged:
    save_flagged_grid(os.path.join(workdir, "flagged.png"), data.images, flagged,
                      config.grid_examples)
  cli.print_report(report)
  logging.info("Wrote %s: train without them with --config.data.exclude=%s.",
               os.path.join(workdir, "exclude.npy"), os.path.join(workdir, "exclude.npy"))


if __name__ == "__main__":
  cli.run(main)
