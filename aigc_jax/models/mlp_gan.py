"""The MLP GAN of the seed texts: fully connected generator and discriminator.

Generator z -> 128 -> 256 -> 512 -> prod(image_shape), tanh; discriminator image -> 512
-> 256 -> 128 -> 1 logit; LeakyReLU(0.01) throughout (the Keras default slope the seed
model used).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class MLPGenerator(nn.Module):
  """Maps latents (B, Z) to images (B, H, W, C) in [-1, 1]."""

  image_shape: tuple[int, int, int]
  hidden: Sequence[int] = (128, 256, 512)
  negative_slope: float = 0.01

  @nn.compact
  def __call__(self, z: jnp.ndarray) -> jnp.ndarray:
    x = z
    for width in self.hidden:
      x = nn.leaky_relu(nn.Dense(width)(x), self.negative_slope)
    x = nn.Dense(int(np.prod(self.image_shape)))(x)
    return jnp.tanh(x).reshape((-1, *self.image_shape))  # (B, H, W, C)


class MLPDiscriminator(nn.Module):
  """Maps images (B, H, W, C) to one real/fake logit each, shape (B,)."""

  hidden: Sequence[int] = (512, 256, 128)
  negative_slope: float = 0.01

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
    x = images.reshape((images.shape[0], -1))  # (B, H*W*C)
    for width in self.hidden:
      x = nn.leaky_relu(nn.Dense(width)(x), self.negative_slope)
    return nn.Dense(1)(x)[:, 0]
