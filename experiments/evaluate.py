"""Evaluates a trained run on its held-out split and writes DIR/eval/step_N.json.

  python -m experiments.evaluate --workdir=runs/vae_mlp [--iwae_k=1000] [--step=N]
      [--num_examples=10000] [--batch_size=100]
VAEs: test -ELBO, IWAE NLL (k samples), bits/dim, reconstruction PSNR/SSIM, and PNG grids
of reconstructions, prior samples and latent interpolations.
"""

import json
import os
import time

from absl import app, flags, logging

from aigc_jax.data.sources import ImageData
from aigc_jax.metrics.vae_report import evaluate_vae, save_vae_figures
from aigc_jax.train.loop import load_split
from aigc_jax.train.restore import restore_run
from experiments import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder written by experiments.train.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_IWAE_K = flags.DEFINE_integer("iwae_k", 1000, "Importance samples per example.", lower_bound=1)
_NUM = flags.DEFINE_integer("num_examples", None, "Evaluate the first N held-out examples.")
_BATCH = flags.DEFINE_integer("batch_size", 100, "Examples per jitted call.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the evaluation's random draws.")
flags.mark_flags_as_required(["workdir"])

EVALUATORS = {"vae": (evaluate_vae, save_vae_figures)}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  run = restore_run(_WORKDIR.value, _STEP.value)
  if run.config.family not in EVALUATORS:
    raise app.UsageError(f"experiments.evaluate has no metrics for family "
                         f"'{run.config.family}'; it evaluates {sorted(EVALUATORS)}.")
  evaluate, save_figures = EVALUATORS[run.config.family]
  data = load_split(run.config, run.config.data.eval_split)
  if _NUM.value:
    data = ImageData(data.images[:_NUM.value], data.labels[:_NUM.value], data.num_classes)
  start = time.perf_counter()
  report = evaluate(run, data, iwae_k=_IWAE_K.value, batch_size=_BATCH.value,
                    seed=_SEED.value)
  report["eval_seconds"] = time.perf_counter() - start
  report["split"] = run.config.data.eval_split
  out_dir = os.path.join(_WORKDIR.value, "eval")
  report["figures"] = save_figures(run, data, out_dir, seed=_SEED.value)
  path = os.path.join(out_dir, f"step_{run.step}.json")
  with open(path, "w") as f:
    json.dump(report, f, indent=2)
  width = max(map(len, report))
  print("\n".join(f"{k:<{width}}  {v}" for k, v in report.items()))
  logging.info("Wrote %s.", path)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
