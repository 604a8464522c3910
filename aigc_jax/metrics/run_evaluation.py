"""`evaluate_run(run_dir, options)`: the report of a trained run, as experiments.evaluate
writes it (RUN_DIR/eval/step_N.json).

Image models (GANs and VAEs): samples scored against the real `data.test_split` in the
dataset's feature-classifier space (image_report.py; docs/metrics.md). VAEs also: -ELBO,
IWAE NLL, bits/dim, reconstruction PSNR/SSIM and PNG grids (vae_report.py). Language
models: loss and bits per character over `data.eval_split` and `data.test_split`, and
continuations of test-split prompts scored by text_metrics.py. Every family: the summary
of a membership-inference audit (privacy_audit.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable

import jax
import numpy as np
from absl import logging

from aigc_jax.data.images import ImageData
from aigc_jax.data.sources import config_split, describe_split
from aigc_jax.data.text import TextSpec
from aigc_jax.data.training_split import class_shares, cluster_labels
from aigc_jax.errors import InvalidInputError, MissingInputError
from aigc_jax.metrics import feature_classifier
from aigc_jax.metrics.class_report import per_class_report
from aigc_jax.metrics.image_report import image_sample_report, real_floor
from aigc_jax.metrics.privacy_audit import AuditOptions, audit_run, audit_summary
from aigc_jax.metrics.text_metrics import text_report
from aigc_jax.metrics.vae_report import evaluate_vae, save_vae_figures
from aigc_jax.train import sharding
from aigc_jax.train.evaluation import make_split_evaluator
from aigc_jax.train.restore import (RestoredRun, generate_images, generate_text, requested_labels,
                                    restore_run)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """What to evaluate and how much; the flags of experiments.evaluate."""

  step: int | None = None  # Checkpoint step; None = the latest.
  seed: int = 0  # Seed of every random draw of the evaluation.
  batch_size: int = 100  # VAE: examples per jitted call.
  iwae_k: int = 1000  # VAE: importance samples per example.
  num_examples: int | None = None  # VAE: only the first N held-out examples.
  num_samples: int = 10_000  # Image models: samples to score (0: skip).
  classifier_dir: str | None = None  # None: RUN_DIR/../classifiers/DATASET.
  text_samples: int = 20  # Language models: test prompts to continue (0: skip).
  prompt_chars: int = 64  # Language models: characters of each prompt.
  text_chars: int = 300  # Language models: characters per continuation.
  temperature: float = 1.0  # Language models: sampling temperature.
  sample_labels: str | None = None  # Conditional: "uniform" or "data"; None: the run's.
  audit_candidates: int = 1000  # Membership-inference audit: members drawn (0: skip).


def default_classifier_dir(run_dir: str, dataset: str) -> str:
  """Beside the run folder, shared by every run of the same parent folder."""
  return os.path.join(os.path.dirname(os.path.abspath(run_dir)), "classifiers", dataset)


def sample_metrics(run: RestoredRun, run_dir: str, options: EvalOptions) -> dict:
  """Every sample-based metric of `options.num_samples` draws from the run."""
  if not options.num_samples:
    return {}
  labels = requested_labels(run, options.num_samples, prior=options.sample_labels)
  samples = generate_images(run, options.num_samples, seed=options.seed, labels=labels)
  return score_images(run, run_dir, options, samples, labels)


def score_images(run: RestoredRun, run_dir: str, options: EvalOptions, samples: np.ndarray,
                 labels: np.ndarray | None) -> dict:
  """Every sample-based metric (image_report.py) of `samples` in [0, 1], drawn for
  `labels` if given, in the feature classifier space of the run's dataset."""
  dataset = run.config.data.name
  train = config_split(run.config, run.config.data.split)
  test = config_split(run.config, run.config.data.test_split)
  directory = options.classifier_dir or default_classifier_dir(
      run_dir, feature_classifier.cache_name(dataset, train))
  model, params, card = feature_classifier.load_or_train(directory, dataset, train, test,
                                                         log=logging.info)
  embed = lambda images: feature_classifier.features_and_probs(model, params, images)
  fake_feats, fake_probs = embed(samples)
  real_feats, real_probs = embed(test.images)
  train_feats, _ = embed(train.images)
  if cluster_labels(run.config):
    labels = None  # Clusters drawn, not classes: no class-conditional score applies.
  report = image_sample_report(fake_feats, fake_probs, real_feats, real_probs, train_feats,
                               requested_labels=labels)
  shares = class_shares(run.config, train, log=logging.info, clusters=False)
  report["per_class"] = per_class_report(fake_feats, fake_probs, real_feats, test.labels,
                                         shares, requested_labels=labels)
  size = min(len(fake_feats), len(train_feats))
  others = np.random.default_rng(options.seed).choice(len(train_feats), size, replace=False)
  return {"samples": report, "real_floor": real_floor(real_feats, train_feats[others]),
          "feature_classifier": {**card, "directory": directory},
          "held_out": describe_split(run.config.data, run.config.data.test_split)}


def _gan_report(run: RestoredRun, run_dir: str, options: EvalOptions) -> dict:
  return {"family": "gan", "step": run.step, **sample_metrics(run, run_dir, options)}


def _vae_report(run: RestoredRun, run_dir: str, options: EvalOptions) -> dict:
  split = run.config.data.test_split
  data = config_split(run.config, split)
  if options.num_examples:
    n = options.num_examples
    data = ImageData(data.images[:n], data.labels[:n], data.num_classes)
  report = evaluate_vae(run, data, iwae_k=options.iwae_k, batch_size=options.batch_size,
                        seed=options.seed)
  report["split"] = describe_split(run.config.data, split)
  report["figures"] = save_vae_figures(run, data, os.path.join(run_dir, "eval"),
                                       seed=options.seed)
  return {**report, **sample_metrics(run, run_dir, options)}


def text_sample_metrics(run: RestoredRun, options: EvalOptions,
                        ensemble: list[RestoredRun] | None = None,
                        combine: str = "mixture") -> dict:
  """Continuations of test-split prompts scored by text_metrics.text_report; written by
  `ensemble` (runs decoding together, combined by `combine`) instead of `run` if given."""
  if not options.text_samples:
    return {}
  config = run.config
  train = run.spec.decode(config_split(config, config.data.split).tokens)
  test = run.spec.decode(config_split(config, config.data.test_split).tokens)
  span = options.prompt_chars + options.text_chars
  if len(test) < span:
    raise InvalidInputError(f"The {config.data.test_split} split has {len(test)} characters, fewer "
                            f"than one prompt and continuation ({span}); lower --prompt_chars or "
                            "--text_chars.")
  starts = np.linspace(0, len(test) - span, options.text_samples).astype(int)
  prompts = [test[s:s + options.prompt_chars] for s in starts]
  references = [test[s + options.prompt_chars:s + span] for s in starts]
  samples = generate_text(ensemble or run, prompts, options.text_chars, seed=options.seed,
                          temperature=options.temperature, combine=combine)
  report = text_report(samples, train, references)
  report.update(prompt_chars=options.prompt_chars, new_chars=options.text_chars,
                temperature=options.temperature)
  return {"samples": report}


def _lm_report(run: RestoredRun, run_dir: str, options: EvalOptions) -> dict:
  del run_dir
  config = run.config
  report = {"family": "lm", "step": run.step, **text_sample_metrics(run, options)}
  eval_step = run.family.make_eval_step(config, run.spec)
  for split in dict.fromkeys((config.data.eval_split, config.data.test_split)):
    evaluate = make_split_evaluator(eval_step, config_split(config, split),
                                    batch_size=config.eval_batch_size,
                                    mesh=sharding.make_mesh(),
                                    rng=jax.random.key(options.seed))
    report.update({f"{split}_{name}": value for name, value in evaluate(run.state).items()})
  return report


REPORTS: dict[str, Callable[[RestoredRun, str, EvalOptions], dict]] = {
    "gan": _gan_report, "vae": _vae_report, "lm": _lm_report}


def evaluate_run(run_dir: str, options: EvalOptions = EvalOptions()) -> tuple[dict, str]:
  """Evaluates `run_dir`'s checkpoint; returns the report and the path of the JSON file
  it was written to, RUN_DIR/eval/step_N.json."""
  run = restore_run(run_dir, options.step)
  if run.config.family not in REPORTS:
    raise InvalidInputError(f"No evaluation for family '{run.config.family}'; there is one for "
                            f"{sorted(REPORTS)}.")
  os.makedirs(os.path.join(run_dir, "eval"), exist_ok=True)
  start = time.perf_counter()
  report = REPORTS[run.config.family](run, run_dir, options)
  if options.audit_candidates:
    audit = AuditOptions(num_candidates=options.audit_candidates, seed=options.seed,
                         num_samples=options.num_samples)
    report["privacy_audit"] = audit_summary(audit_run(run, run_dir, audit))
  report["eval_seconds"] = time.perf_counter() - start
  path = os.path.join(run_dir, "eval", f"step_{run.step}.json")
  with open(path, "w") as f:
    json.dump(report, f, indent=2)
  return report, path


def load_saved_samples(samples_path: str, image_shape) -> tuple[np.ndarray, np.ndarray | None]:
  """Images written by experiments.sample (float [0, 1], (N, H, W, C)) and, if it wrote
  them, their labels (SAMPLES.labels.npy)."""
  if not os.path.isfile(samples_path):
    raise MissingInputError(f"No samples file {samples_path}; write one with python -m "
                            "experiments.sample --output=FILE.npy.")
  samples = np.load(samples_path)
  if samples.ndim != 4 or tuple(samples.shape[1:]) != tuple(image_shape):
    raise InvalidInputError(f"{samples_path} holds images of shape {samples.shape}; this run "
                            f"draws (N, {', '.join(map(str, image_shape))}). Score it with "
                            "a run of the same dataset.")
  labels_path = os.path.splitext(samples_path)[0] + ".labels.npy"
  labels = np.load(labels_path) if os.path.isfile(labels_path) else None
  if labels is not None and len(labels) != len(samples):
    raise InvalidInputError(f"{labels_path} has {len(labels)} labels for {len(samples)} "
                            "images; write both again with experiments.sample.")
  return samples, labels


def evaluate_samples(run_dir: str, samples_path: str,
                     options: EvalOptions = EvalOptions()) -> tuple[dict, str]:
  """Scores saved samples (experiments.sample --output) as `evaluate_run` scores the run's
  own draws, in the feature space of `run_dir`'s dataset; writes SAMPLES.eval.json, with
  the fusion report SAMPLES.fusion.json beside it copied in."""
  run = restore_run(run_dir, options.step)
  if isinstance(run.spec, TextSpec):
    raise InvalidInputError(f"--samples scores images; {run_dir} is a language-model run.")
  samples, labels = load_saved_samples(samples_path, run.spec.image_shape)
  start = time.perf_counter()
  report = {"samples_file": os.path.abspath(samples_path), "scored_in_run": run_dir,
            **score_images(run, run_dir, options, samples, labels)}
  report["eval_seconds"] = time.perf_counter() - start
  stem = os.path.splitext(samples_path)[0]
  if os.path.isfile(stem + ".fusion.json"):
    with open(stem + ".fusion.json") as f:
      report["fusion"] = json.load(f)
  path = stem + ".eval.json"
  with open(path, "w") as f:
    json.dump(report, f, indent=2)
  return report, path
