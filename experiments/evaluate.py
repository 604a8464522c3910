"""Evaluates a trained run on held-out data and writes DIR/eval/step_N.json.

  python -m experiments.evaluate --workdir=runs/vae_mlp [--iwae_k=1000] [--step=N]
      [--num_examples=10000] [--batch_size=100]
VAEs: test -ELBO, IWAE NLL (k samples), bits/dim, reconstruction PSNR/SSIM, and PNG grids
of reconstructions, prior samples and latent interpolations.
Language models: loss (nats/char) and bits per character over the whole validation and
test splits.
"""

import json
import os
import time

import jax
from absl import app, flags, logging

from aigc_jax.data.sources import ImageData
from aigc_jax.metrics.vae_report import evaluate_vae, save_vae_figures
from aigc_jax.train import sharding
from aigc_jax.train.evaluation import make_split_evaluator
from aigc_jax.train.loop import load_split
from aigc_jax.train.restore import RestoredRun, restore_run
from experiments import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder written by experiments.train.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_IWAE_K = flags.DEFINE_integer("iwae_k", 1000, "VAE: importance samples per example.",
                               lower_bound=1)
_NUM = flags.DEFINE_integer("num_examples", None, "VAE: the first N held-out examples.")
_BATCH = flags.DEFINE_integer("batch_size", 100, "Examples per jitted call.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the evaluation's random draws.")
flags.mark_flags_as_required(["workdir"])


def evaluate_vae_run(run: RestoredRun, out_dir: str) -> dict:
  data = load_split(run.config, run.config.data.eval_split)
  if _NUM.value:
    data = ImageData(data.images[:_NUM.value], data.labels[:_NUM.value], data.num_classes)
  report = evaluate_vae(run, data, iwae_k=_IWAE_K.value, batch_size=_BATCH.value,
                        seed=_SEED.value)
  report["split"] = run.config.data.eval_split
  report["figures"] = save_vae_figures(run, data, out_dir, seed=_SEED.value)
  return report


def evaluate_lm_run(run: RestoredRun, out_dir: str) -> dict:
  del out_dir
  mesh = sharding.make_mesh()
  report = {"family": "lm", "step": run.step}
  for split in ("validation", "test"):
    evaluate = make_split_evaluator(run.family, run.config, run.spec,
                                    load_split(run.config, split), mesh,
                                    jax.random.key(_SEED.value))
    for name, value in evaluate(run.state).items():
      report[f"{split}_{name.removeprefix('eval/')}"] = value
  return report


EVALUATORS = {"vae": evaluate_vae_run, "lm": evaluate_lm_run}


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
  width = max(map(len, report))
  print("\n".join(f"{k:<{width}}  {v}" for k, v in report.items()))
  logging.info("Wrote %s.", path)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
