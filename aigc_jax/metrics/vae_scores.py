"""The VAE's view of a training split: each example's negative ELBO, an outlier score."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.data.images import ImageData
from aigc_jax.errors import InvalidInputError
from aigc_jax.losses.vae import neg_elbo
from aigc_jax.train import sharding
from aigc_jax.train.evaluation import per_example_values
from aigc_jax.train.restore import RestoredRun


def per_example_neg_elbo(run: RestoredRun, data: ImageData, batch_size: int = 500,
                         seed: int = 0, draws: int = 1) -> np.ndarray:
  """(N,) -ELBO in nats of each example, averaged over `draws` posterior samples, on the
  pixels as stored: a binarising model sees grey levels here, which still ranks examples
  by plausibility."""
  if run.config.family != "vae":
    raise InvalidInputError(f"The ELBO outlier score needs a VAE run; this one is "
                            f"'{run.config.family}'.")
  if tuple(run.spec.image_shape) != tuple(data.images.shape[1:]):
    raise InvalidInputError(f"The VAE models images of {run.spec.image_shape}, the split has "
                            f"{data.images.shape[1:]}; train a VAE on this dataset.")
  config, model = run.config, run.model

  def batch_neg_elbo(state, batch, rng):
    images = batch["image"]
    eps = jax.random.normal(rng, (draws, images.shape[0], config.model.latent_dim))
    labels = batch["label"] if config.model.conditional else None
    per_draw = jax.vmap(lambda e: neg_elbo(model, state.params, images, labels, e,
                                           config.likelihood))(eps)
    return jnp.mean(per_draw, axis=0)

  return per_example_values(batch_neg_elbo, run.state, data, batch_size=batch_size,
                            mesh=sharding.make_mesh(), rng=jax.random.key(seed))
