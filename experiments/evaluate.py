"""Evaluates a trained run on held-out data and writes DIR/eval/step_N.json.

  python -m experiments.evaluate --workdir=runs/vae_mlp [--iwae_k=1000] [--step=N]
      [--num_examples=10000] [--batch_size=100] [--num_samples=10000]
Image models (GANs and VAEs): --num_samples samples scored against the real test split in
the dataset's feature-classifier space (FID, KID, precision/recall, density/coverage, class
histogram and entropy, classifier score, class-conditional accuracy, hallucination and
memorisation rates; docs/metrics.md). The classifier is read from --classifier_dir
(default runs/classifiers/DATASET), and trained there once if absent.
VAEs also: test -ELBO, IWAE NLL (k samples), bits/dim, reconstruction PSNR/SSIM, and PNG grids
of reconstructions, prior samples and latent interpolations.
Language models: loss (nats/char) and bits per character over the whole validation and
test splits; continuations of --text_samples test prompts scored for n-gram novelty,
longest copied span, invented-word rate, self-BLEU and BLEU against the true text.
"""

import json
import os
import time

import jax
import numpy as np
from absl import app, flags, logging

from aigc_jax.data.sources import ImageData
from aigc_jax.metrics import feature_classifier
from aigc_jax.metrics.image_report import image_sample_report, real_floor
from aigc_jax.metrics.text_metrics import text_report
from aigc_jax.metrics.vae_report import evaluate_vae, save_vae_figures
from aigc_jax.train import sharding
from aigc_jax.train.evaluation import make_split_evaluator
from aigc_jax.train.loop import load_split
from aigc_jax.train.restore import (RestoredRun, generate_images, generate_text,
                                    requested_labels, restore_run)
from experiments import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder written by experiments.train.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_IWAE_K = flags.DEFINE_integer("iwae_k", 1000, "VAE: importance samples per example.",
                               lower_bound=1)
_NUM = flags.DEFINE_integer("num_examples", None, "VAE: the first N held-out examples.")
_BATCH = flags.DEFINE_integer("batch_size", 100, "Examples per jitted call.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the evaluation's random draws.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 10_000,
                                    "Image models: samples to score (0: skip).", lower_bound=0)
_TEXT_SAMPLES = flags.DEFINE_integer("text_samples", 20,
                                     "Language models: test prompts to continue (0: skip).",
                                     lower_bound=0)
_TEXT_CHARS = flags.DEFINE_integer("text_chars", 300, "Language models: characters per "
                                   "continuation.", lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Language models: sampling temperature.",
                                  lower_bound=0.0)
_CLASSIFIER_DIR = flags.DEFINE_string("classifier_dir", None,
                                      "Feature classifier folder; default runs/classifiers/DATASET.")
flags.mark_flags_as_required(["workdir"])


def sample_metrics(run: RestoredRun) -> dict:
  """Every sample-based metric (image_report.py), in the dataset's classifier space."""
  if not _NUM_SAMPLES.value:
    return {}
  dataset = run.config.data.name
  train = load_split(run.config, run.config.data.split)
  test = load_split(run.config, run.config.data.eval_split)
  directory = _CLASSIFIER_DIR.value or os.path.join("runs", "classifiers", dataset)
  model, params, card = feature_classifier.load_or_train(directory, dataset, train, test,
                                                         log=logging.info)
  labels = requested_labels(run, _NUM_SAMPLES.value)
  samples = generate_images(run, _NUM_SAMPLES.value, seed=_SEED.value, labels=labels)
  embed = lambda images: feature_classifier.features_and_probs(model, params, images)
  fake_feats, fake_probs = embed(samples)
  real_feats, real_probs = embed(test.images)
  train_feats, _ = embed(train.images)
  report = image_sample_report(fake_feats, fake_probs, real_feats, real_probs, train_feats,
                               requested_labels=labels)
  size = min(len(fake_feats), len(train_feats))
  others = np.random.default_rng(_SEED.value).choice(len(train_feats), size, replace=False)
  return {"samples": report, "real_floor": real_floor(real_feats, train_feats[others]),
          "feature_classifier": {**card, "directory": directory}}


def evaluate_gan_run(run: RestoredRun, out_dir: str) -> dict:
  del out_dir
  return {"family": "gan", "step": run.step, **sample_metrics(run)}


def evaluate_vae_run(run: RestoredRun, out_dir: str) -> dict:
  data = load_split(run.config, run.config.data.eval_split)
  if _NUM.value:
    data = ImageData(data.images[:_NUM.value], data.labels[:_NUM.value], data.num_classes)
  report = evaluate_vae(run, data, iwae_k=_IWAE_K.value, batch_size=_BATCH.value,
                        seed=_SEED.value)
  report["split"] = run.config.data.eval_split
  report["figures"] = save_vae_figures(run, data, out_dir, seed=_SEED.value)
  return {**report, **sample_metrics(run)}


def text_sample_metrics(run: RestoredRun) -> dict:
  """Continuations of test-split prompts scored by text_metrics.text_report."""
  if not _TEXT_SAMPLES.value:
    return {}
  train = run.spec.decode(load_split(run.config, "train").tokens)
  test = run.spec.decode(load_split(run.config, "test").tokens)
  prompt_chars, new_chars = 64, _TEXT_CHARS.value
  span = prompt_chars + new_chars
  starts = np.linspace(0, len(test) - span, _TEXT_SAMPLES.value).astype(int)
  prompts = [test[s:s + prompt_chars] for s in starts]
  references = [test[s + prompt_chars:s + span] for s in starts]
  samples = generate_text(run, prompts, new_chars, seed=_SEED.value,
                          temperature=_TEMPERATURE.value)
  report = text_report(samples, train, references)
  report.update(prompt_chars=prompt_chars, new_chars=new_chars,
                temperature=_TEMPERATURE.value)
  return {"samples": report}


def evaluate_lm_run(run: RestoredRun, out_dir: str) -> dict:
  del out_dir
  mesh = sharding.make_mesh()
  report = {"family": "lm", "step": run.step, **text_sample_metrics(run)}
  for split in ("validation", "test"):
    evaluate = make_split_evaluator(run.family, run.config, run.spec,
                                    load_split(run.config, split), mesh,
                                    jax.random.key(_SEED.value))
    for name, value in evaluate(run.state).items():
      report[f"{split}_{name.removeprefix('eval/')}"] = value
  return report


EVALUATORS = {"gan": evaluate_gan_run, "vae": evaluate_vae_run, "lm": evaluate_lm_run}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  run = restore_run(_WORKDIR.value, _STEP.value)
  if run.config.family not in EVALUATORS:
    raise app.UsageError(f"experiments.evaluate has no metrics for family "
                         f"'{run.config.family}'; it evaluates {sorted(EVALUATORS)}.")
  out_dir = os.path.join(_WORKDIR.value, "eval")
  os.makedirs(out_dir, exist_ok=True)
  start = time.perf_counter()
  report = EVALUATORS[run.config.family](run, out_dir)
  report["eval_seconds"] = time.perf_counter() - start
  path = os.path.join(out_dir, f"step_{run.step}.json")
  with open(path, "w") as f:
    json.dump(report, f, indent=2)
  cli.print_report(report)
  logging.info("Wrote %s.", path)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
