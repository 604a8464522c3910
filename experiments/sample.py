"""Samples a trained run's latest (or given) checkpoint.

Images (GANs sample their EMA generator; VAEs decode prior samples):
  python -m experiments.sample --workdir=runs/mlp_gan --num_samples=1000 \
      --output=samples.npy [--png=grid.png] [--seed=0] [--step=N]
writes float32 images in [0, 1], shape (N, H, W, C). Class-conditional models take
--label=K (every sample of class K) or --labels=balanced (0, 1, ..., K-1, 0, ...; the
default) and also write the labels used, int32 (N,), to samples.labels.npy.

Several image runs (a repeated --workdir) are sampled as one, fused by --fusion
(aigc_jax/quality/fusion.py); one run can be filtered the same way:
  python -m experiments.sample --workdir=runs/a --workdir=runs/b --workdir=runs/c \
      --num_samples=10000 --output=fused.npy --fusion=vote --min_votes=3
mixture draws evenly from the runs; vote keeps what --min_votes of --num_judges
classifiers (trained once on disjoint folds of the training split, in --judges_dir) agree
on; drs is discriminator rejection sampling with each GAN's own D. What the keeping cost
(draws per kept sample, per run, seconds) goes to samples.fusion.json; score the images
with python -m experiments.evaluate --workdir=runs/a --samples=fused.npy.

Text (language models), every prompt continued at once:
  python -m experiments.sample --workdir=runs/gpt --prompt="ROMEO:" [--prompt="JULIET:"] \
      --num_chars=500 --temperature=0.8 --top_k=40 --top_p=0.95 [--stop="\n\n"] [--seed=S] \
      [--continuations=4]
prints each prompt with its continuation (and writes them to --output if given). Several
language-model runs (a repeated --workdir) decode together as an ensemble, their
next-character distributions averaged (--combine=mixture) or their log-probabilities
averaged (--combine=product; aigc_jax/models/decoding.py).
"""

import json
import os

import numpy as np
from absl import app, flags, logging

from aigc_jax.data.image_grid import make_grid, save_png
from aigc_jax.data.text import TextSpec
from aigc_jax.models.decoding import COMBINE
from aigc_jax.quality.fusion import STRATEGIES, FusionOptions, draw_fused
from aigc_jax.quality.judges import judges_for_run
from aigc_jax.train.restore import generate_images, generate_text, requested_labels, restore_run
from aigc_jax.train.sample_output import grid_columns
from experiments import cli

_FUSION_DEFAULTS = FusionOptions()
_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "Run folder written by "
                                      "experiments.train; images: repeat to fuse several.")
_OUTPUT = flags.DEFINE_string("output", None, "Images: .npy file (required). Text: .txt file.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (of every run); default the latest.")
_NUM = flags.DEFINE_integer("num_samples", 64, "Images: how many to draw.", lower_bound=1)
_PNG = flags.DEFINE_string("png", None, "Images: optional PNG grid of the first 100.")
_LABEL = flags.DEFINE_integer("label", None, "Images, conditional models: draw class K only.",
                               lower_bound=0)
_LABELS = flags.DEFINE_enum("labels", None, ["balanced"],
                            "Images, conditional models: equal numbers of every class.")
_BATCH = flags.DEFINE_integer("batch_size", 500, "Images per jitted call.", lower_bound=1)
_PROMPTS = flags.DEFINE_multi_string("prompt", ["\n"], "Text: prompt(s) to continue.")
_CONTINUATIONS = flags.DEFINE_integer("continuations", 1, "Text: continuations per prompt.",
                                      lower_bound=1)
_CHARS = flags.DEFINE_integer("num_chars", 500, "Text: characters to generate.", lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Text: softmax temperature.",
                                  lower_bound=0.0)
_TOP_K = flags.DEFINE_integer("top_k", 0, "Text: keep the k likeliest tokens (0: all).",
                              lower_bound=0)
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Text: nucleus mass to keep, in (0, 1] (1: all).",
                            upper_bound=1.0)
_STOP = flags.DEFINE_string("stop", None, "Text: end each continuation before this string.")
_FUSION = flags.DEFINE_enum("fusion", None, STRATEGIES, "Images: fuse the runs (or filter "
                            "one); default mixture for several runs, plain sampling for one.")
_JUDGES_DIR = flags.DEFINE_string("judges_dir", None, "vote: judges' folder; default "
                                  "classifiers/DATASET_judges beside the first run folder.")
_NUM_JUDGES = flags.DEFINE_integer("num_judges", 3, "vote: judges, each trained on its own "
                                   "fold of the training split.", lower_bound=1)
_MIN_VOTES = flags.DEFINE_integer("min_votes", None, "vote: judges that must agree; default "
                                  "all of them.", lower_bound=1)
_CONFIDENT = flags.DEFINE_float("confident", _FUSION_DEFAULTS.confident, "vote: probability "
                                "at which a judge gives a class its vote.", lower_bound=0.0,
                                upper_bound=1.0)
_DRS_PERCENTILE = flags.DEFINE_float("drs_percentile", _FUSION_DEFAULTS.drs_percentile,
                                     "drs: gamma is this percentile of F(x) on the burn-in "
                                     "draw; higher keeps fewer.", lower_bound=0.0,
                                     upper_bound=100.0)
_COMBINE = flags.DEFINE_enum("combine", "mixture", COMBINE, "Text, several runs: average "
                             "next-character probabilities (mixture) or log-probabilities "
                             "(product).")
flags.mark_flags_as_required(["workdir"])


def sample_text(runs) -> None:
  prompts = [p for p in _PROMPTS.value for _ in range(_CONTINUATIONS.value)]
  texts = generate_text(runs, prompts, _CHARS.value, seed=_SEED.value,
                        temperature=_TEMPERATURE.value, top_k=_TOP_K.value,
                        top_p=_TOP_P.value, stop=_STOP.value, combine=_COMBINE.value)
  shown = "\n\n".join(f"=== {p!r}\n{p}{t}" for p, t in zip(prompts, texts))
  print(shown)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      f.write(shown + "\n")


def fused_images(runs, labels) -> np.ndarray:
  """--fusion's draw from all runs; writes its cost report beside --output."""
  options = FusionOptions(strategy=_FUSION.value or "mixture",
                          min_votes=_MIN_VOTES.value or _NUM_JUDGES.value,
                          confident=_CONFIDENT.value, drs_percentile=_DRS_PERCENTILE.value,
                          batch_size=_BATCH.value)
  judges = (judges_for_run(runs[0], _WORKDIRS.value[0], _NUM_JUDGES.value, _JUDGES_DIR.value,
                           log=logging.info) if options.strategy == "vote" else None)
  images, report = draw_fused(runs, _WORKDIRS.value, _NUM.value, labels, options,
                              judges=judges, seed=_SEED.value, log=logging.info)
  report_path = os.path.splitext(_OUTPUT.value)[0] + ".fusion.json"
  with open(report_path, "w") as f:
    json.dump(report, f, indent=2)
  logging.info("%s: %.3f draws per kept sample (burn-in included), %.1f s; report %s.",
               options.strategy, report["draws_per_kept"], report["seconds"], report_path)
  return images


def sample_images(runs) -> None:
  run = runs[0]
  if flags.FLAGS["prompt"].present:
    raise app.UsageError("--prompt is for language-model runs; this run models images "
                         "(use --label or --labels to choose classes).")
  if not _OUTPUT.value:
    raise app.UsageError("Image runs need --output=FILE.npy.")
  if _LABEL.value is not None and _LABELS.value:
    raise app.UsageError("Give --label=K or --labels=balanced, not both.")
  labels = requested_labels(run, _NUM.value, _LABEL.value, _LABELS.value == "balanced")
  if len(runs) > 1 or _FUSION.value:
    images = fused_images(runs, labels)
  else:
    images = generate_images(run, _NUM.value, seed=_SEED.value, batch_size=_BATCH.value,
                             labels=labels)
  np.save(_OUTPUT.value, images)
  logging.info("Wrote %s samples %s to %s.", len(images), images.shape[1:], _OUTPUT.value)
  if labels is not None:
    labels_path = os.path.splitext(_OUTPUT.value)[0] + ".labels.npy"
    np.save(labels_path, labels)
    logging.info("Wrote their labels to %s.", labels_path)
  if _PNG.value:
    columns = grid_columns(run.config, run.spec) if _LABEL.value is None else None
    save_png(_PNG.value, make_grid(images[:100], columns))  # Balanced: a column per class.
    logging.info("Wrote grid %s.", _PNG.value)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not 0.0 < _TOP_P.value <= 1.0:
    raise app.UsageError(f"--top_p={_TOP_P.value} keeps no token; give a nucleus mass in "
                         "(0, 1] (1 keeps all).")
  cli.setup_runtime()
  runs = [restore_run(workdir, _STEP.value) for workdir in _WORKDIRS.value]
  if not isinstance(runs[0].spec, TextSpec):
    sample_images(runs)
  elif _FUSION.value:
    raise app.UsageError("--fusion is for image runs; several language-model runs decode "
                         "together, combined by --combine.")
  else:
    sample_text(runs)


if __name__ == "__main__":
  cli.run(main)
