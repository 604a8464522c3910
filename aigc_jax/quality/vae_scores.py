"""The VAE's view of a training split: each example's negative ELBO, an outlier score."""

from __future__ import annotations

import jax
import numpy as np

from aigc_jax.data.sources import ImageData
from aigc_jax.metrics.likelihood import elbo
from aigc_jax.train.restore import RestoredRun
from aigc_jax.train.vae import build_model


def per_example_neg_elbo(run: RestoredRun, data: ImageData, batch_size: int = 500,
                         seed: int = 0) -> np.ndarray:
  """(N,) -ELBO in nats of each example (one posterior sample), on the pixels as stored:
  a binarising model sees grey levels here, which still ranks examples by plausibility."""
  if run.config.family != "vae":
    raise ValueError(f"The ELBO outlier score needs a VAE run; this one is "
                     f"'{run.config.family}'.")
  if tuple(run.spec.image_shape) != tuple(data.images.shape[1:]):
    raise ValueError(f"The VAE models images of {run.spec.image_shape}, the split has "
                     f"{data.images.shape[1:]}; train a VAE on this dataset.")
  model = build_model(run.config, run.spec)
  conditional = run.config.model.conditional

  @jax.jit
  def batch_neg_elbo(params, images, labels, rng):
    return -elbo(model, params, images, labels if conditional else None, rng,
                 run.config.likelihood)

  key = jax.random.key(seed)
  scores = [batch_neg_elbo(run.state.params, batch["image"], batch["label"],
                           jax.random.fold_in(key, i))
            for i, batch in enumerate(data.eval_batches(global_batch=batch_size))]
  return np.concatenate([np.asarray(s) for s in scores])[:len(data.images)]
