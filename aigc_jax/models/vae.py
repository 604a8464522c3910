"""Variational autoencoders: MLP and convolutional, optionally conditioned on a label.

A VAE maps an image to the mean and log-variance of a diagonal Gaussian posterior q(z|x)
and maps a latent back to the parameters of p(x|z) (per-pixel logits or means). The
likelihood itself lives in `aigc_jax/losses/vae.py`, so any backbone pairs with any one.
Conditioning (CVAE) feeds a one-hot label to both encoder and decoder, and may give each
class its own learned Gaussian prior p(z|y) (`ClassPrior`): the encoder then need not
squeeze every class into one N(0, I), and a prior sample for class y lands where the
decoder has seen class y, instead of in a region it learned for another digit.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.errors import InvalidInputError
from aigc_jax.models.matmul_conv import MatmulConvTranspose


def _with_label(x: jnp.ndarray, labels: jnp.ndarray | None, num_classes: int) -> jnp.ndarray:
  if labels is None:
    return x
  return jnp.concatenate([x, jax.nn.one_hot(labels, num_classes, dtype=x.dtype)], axis=-1)


class MLPEncoder(nn.Module):
  latent_dim: int
  hidden: Sequence[int] = (400,)
  num_classes: int = 0  # > 0: conditional on a label.

  @nn.compact
  def __call__(self, images, labels=None):
    x = _with_label(images.reshape((images.shape[0], -1)), labels, self.num_classes)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.latent_dim)(x), nn.Dense(self.latent_dim)(x)  # mean, log-var


class MLPDecoder(nn.Module):
  image_shape: tuple[int, int, int]
  out_per_pixel: int = 1
  hidden: Sequence[int] = (400,)
  num_classes: int = 0

  @nn.compact
  def __call__(self, z, labels=None):
    x = _with_label(z, labels, self.num_classes)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    x = nn.Dense(int(np.prod(self.image_shape)) * self.out_per_pixel)(x)
    return x.reshape((-1, *self.image_shape[:2], self.image_shape[2] * self.out_per_pixel))


class ConvEncoder(nn.Module):
  """Two stride-2 3x3 convolutions (32, 64 channels), then dense to the posterior."""

  latent_dim: int
  channels: Sequence[int] = (32, 64)
  dense: int = 256
  num_classes: int = 0

  @nn.compact
  def __call__(self, images, labels=None):
    x = images
    if labels is not None:  # A label plane per class, so convolutions see the label.
      planes = jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)[:, None, None, :]
      x = jnp.concatenate([x, jnp.broadcast_to(planes, (*x.shape[:3], self.num_classes))], -1)
    for c in self.channels:
      x = nn.relu(nn.Conv(c, (3, 3), strides=(2, 2))(x))  # 28 -> 14 -> 7 (32 -> 16 -> 8)
    x = nn.relu(nn.Dense(self.dense)(x.reshape((x.shape[0], -1))))
    return nn.Dense(self.latent_dim)(x), nn.Dense(self.latent_dim)(x)


class ConvDecoder(nn.Module):
  """Dense to a (H/4, W/4, 64) map, two stride-2 transposed convolutions back to H x W."""

  image_shape: tuple[int, int, int]
  out_per_pixel: int = 1
  channels: Sequence[int] = (64, 32)
  num_classes: int = 0

  @nn.compact
  def __call__(self, z, labels=None):
    h, w, c = self.image_shape
    if h % 4 or w % 4:
      raise InvalidInputError(f"The conv VAE needs image sides divisible by 4; got {h}x{w}.")
    x = _with_label(z, labels, self.num_classes)
    x = nn.relu(nn.Dense((h // 4) * (w // 4) * self.channels[0])(x))
    x = x.reshape((-1, h // 4, w // 4, self.channels[0]))  # (B, H/4, W/4, C0)
    for ch in self.channels:  # SAME-padded stride-2 transposed convs double each side.
      x = nn.relu(MatmulConvTranspose(ch, (3, 3), strides=(2, 2))(x))  # -> (B, H, W, C1)
    return nn.Conv(c * self.out_per_pixel, (3, 3))(x)


class ClassPrior(nn.Module):
  """p(z|y) = N(mean_y, diag exp(logvar_y)), one learned Gaussian per class; starts at N(0, I)."""

  num_classes: int
  latent_dim: int

  @nn.compact
  def __call__(self, labels):
    table = lambda name: nn.Embed(self.num_classes, self.latent_dim,
                                  embedding_init=nn.initializers.zeros, name=name)(labels)
    return table("mean"), table("logvar")


class VAE(nn.Module):
  """encoder(x, y) -> (mean, logvar); decoder(z, y) -> likelihood parameters; prior p(z|y)
  is N(0, I), or `class_prior`'s Gaussian for the label when one is given."""

  encoder: nn.Module
  decoder: nn.Module
  class_prior: nn.Module | None = None

  def __call__(self, images, labels, eps):
    """Reparameterised pass: z = mean + sigma * eps, eps ~ N(0, I) drawn by the caller.

    Returns the likelihood parameters, the posterior (mean, logvar) and the prior's.
    """
    mean, logvar = self.encoder(images, labels)
    z = mean + jnp.exp(0.5 * logvar) * eps
    return self.decoder(z, labels), (mean, logvar), self.prior(labels, mean.shape)

  def encode(self, images, labels=None):
    return self.encoder(images, labels)

  def decode(self, z, labels=None):
    return self.decoder(z, labels)

  def prior(self, labels, shape):
    """(mean, logvar) of p(z|y), each `shape` = (B, latent)."""
    if self.class_prior is None:
      return jnp.zeros(shape), jnp.zeros(shape)
    return self.class_prior(labels)

  def sample_prior(self, labels, eps):
    """z ~ p(z|y) from eps ~ N(0, I) of shape (B, latent)."""
    mean, logvar = self.prior(labels, eps.shape)
    return mean + jnp.exp(0.5 * logvar) * eps
