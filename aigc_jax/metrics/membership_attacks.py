"""Membership-inference attacks: one score per candidate, higher meaning "trained on it".

Each attack reads what a model gives away about an example it may have seen:
- `neg_elbo_scores` (VAE): minus the example's negative ELBO. A model fits its training
  examples better than unseen ones of the same distribution; the gap is the leak.
- `discriminator_scores` (GAN; Hayes et al. 2019, LOGAN's white-box attack): D's logit.
  D is trained to call training images real, so it says so most loudly of its own.
- `nearest_sample_scores` (any generator; Chen et al. 2020, GAN-Leaks' full black-box
  attack): minus the pixel L2 distance to the nearest of the model's samples, drawn for
  the candidate's class when the model is conditional. Needs nothing but samples.
- `line_loss_scores` (language model): minus the mean per-character loss of a line.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.data.images import ImageData
from aigc_jax.errors import InvalidInputError
from aigc_jax.metrics.vae_scores import per_example_neg_elbo
from aigc_jax.train import sharding
from aigc_jax.train.evaluation import per_example_values
from aigc_jax.train.gan import make_critic
from aigc_jax.train.lm import token_losses
from aigc_jax.train.restore import RestoredRun


def neg_elbo_scores(run: RestoredRun, data: ImageData, draws: int = 4, seed: int = 0
                    ) -> np.ndarray:
  """(N,) minus the -ELBO averaged over `draws` posterior samples (fewer sampling
  fluctuations than one draw, so the score ranks the model's fit, not its noise)."""
  return -per_example_neg_elbo(run, data, seed=seed, draws=draws)


def discriminator_scores(run: RestoredRun, data: ImageData, batch_size: int = 500
                         ) -> np.ndarray:
  """(N,) D's logit of each image (with its label, for a conditional D)."""
  if run.config.family != "gan":
    raise InvalidInputError(f"The discriminator attack needs a GAN run; this one is "
                            f"'{run.config.family}'.")
  critic = make_critic(run.config, run.spec)
  conditional = bool(run.config.model.conditional)

  def batch_logits(state, batch, rng):
    del rng
    return critic(state, batch["image"], batch["label"] if conditional else None)

  return per_example_values(batch_logits, run.state, data, batch_size=batch_size,
                            mesh=sharding.make_mesh(), rng=jax.random.key(0))


def _nearest_distances(queries: np.ndarray, references: np.ndarray, chunk: int = 1000
                       ) -> np.ndarray:
  """(Q,) Euclidean distance from each flattened query to its nearest reference."""
  queries = queries.reshape(len(queries), -1).astype(np.float32)
  references = references.reshape(len(references), -1).astype(np.float32)
  reference_sq = np.sum(references ** 2, axis=1)
  nearest = np.empty(len(queries), np.float32)
  for start in range(0, len(queries), chunk):
    q = queries[start:start + chunk]
    squared = np.sum(q ** 2, axis=1)[:, None] + reference_sq[None, :] - 2.0 * q @ references.T
    nearest[start:start + chunk] = np.min(squared, axis=1)
  return np.sqrt(np.maximum(nearest, 0.0))


def nearest_sample_scores(data: ImageData, samples: np.ndarray,
                          sample_labels: np.ndarray | None = None) -> np.ndarray:
  """(N,) minus the distance from each image (scaled to [0, 1]) to the nearest sample in
  [0, 1]; among samples of the image's own class when `sample_labels` is given."""
  images = data.images.astype(np.float32) / 255.0
  if images.shape[1:] != samples.shape[1:]:
    raise InvalidInputError(f"Samples of shape {samples.shape[1:]} cannot be compared with "
                            f"images of {images.shape[1:]}.")
  if sample_labels is None:
    return -_nearest_distances(images, samples)
  scores = np.empty(len(images), np.float32)
  for label in np.unique(data.labels):
    mine, drawn = data.labels == label, sample_labels == label
    if not drawn.any():
      raise InvalidInputError(f"No samples were drawn for class {label}; draw samples for "
                              "every class a candidate has.")
    scores[mine] = -_nearest_distances(images[mine], samples[drawn])
  return scores


def line_windows(lines: list[str], encode, block_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Each line as one window "\\n" + line, cut to block_size + 1 tokens and padded:
  tokens (N, block_size + 1) and the mask (N, block_size) of the line's own targets. The
  newline gives the model the context every line starts with in the corpus."""
  window = block_size + 1
  tokens = np.zeros((len(lines), window), np.int32)
  mask = np.zeros((len(lines), block_size), np.float32)
  for row, line in enumerate(lines):
    ids = encode("\n" + line)[:window]
    tokens[row, :len(ids)] = ids
    mask[row, :len(ids) - 1] = 1.0
  return tokens, mask


def line_loss_scores(run: RestoredRun, lines: list[str], batch_size: int = 256) -> np.ndarray:
  """(N,) minus each line's mean per-character loss (nats) under the language model."""
  if run.config.family != "lm":
    raise InvalidInputError(f"The line-loss attack needs a language-model run; this one is "
                            f"'{run.config.family}'.")
  model = run.model
  tokens, mask = line_windows(lines, run.spec.encode, run.config.block_size)
  mean_loss = jax.jit(lambda params, tokens, mask: jnp.sum(
      token_losses(model, params, tokens) * mask, axis=1) / jnp.maximum(jnp.sum(mask, 1), 1))
  padded = -(-len(lines) // batch_size) * batch_size
  pad = lambda x: np.concatenate([x, np.zeros((padded - len(x), *x.shape[1:]), x.dtype)])
  tokens, mask = pad(tokens), pad(mask)
  losses = np.concatenate([np.asarray(mean_loss(run.state.params, tokens[i:i + batch_size],
                                                mask[i:i + batch_size]))
                           for i in range(0, padded, batch_size)])
  return -losses[:len(lines)]
