"""Draws samples from a trained run's latest (or given) checkpoint.

  python -m experiments.sample --workdir=runs/mlp_gan --num_samples=1000 \
      --output=samples.npy [--png=grid.png] [--seed=0] [--step=N]
Writes float32 images in [0, 1], shape (N, H, W, C); GANs sample their EMA generator.
"""

import numpy as np
from absl import app, flags, logging

from aigc_jax.data.image_grid import make_grid, save_png
from aigc_jax.train.restore import generate_images, restore_run
from experiments import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder written by experiments.train.")
_NUM = flags.DEFINE_integer("num_samples", 64, "How many samples to draw.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "Where to save the samples (.npy).")
_PNG = flags.DEFINE_string("png", None, "Optional PNG grid of the first 100 samples.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_BATCH = flags.DEFINE_integer("batch_size", 500, "Samples per jitted call.", lower_bound=1)
flags.mark_flags_as_required(["workdir", "output"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  run = restore_run(_WORKDIR.value, _STEP.value)
  images = generate_images(run, _NUM.value, seed=_SEED.value, batch_size=_BATCH.value)
  np.save(_OUTPUT.value, images)
  logging.info("Wrote %s samples %s from step %d to %s.", len(images), images.shape[1:],
               run.step, _OUTPUT.value)
  if _PNG.value:
    save_png(_PNG.value, make_grid(images[:100]))
    logging.info("Wrote grid %s.", _PNG.value)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
