"""The MLP GAN of the seed texts: fully connected generator and discriminator.

Generator z -> 128 -> 256 -> 512 -> prod(image_shape), tanh; discriminator image -> 512
-> 256 -> 128 -> 1 logit; LeakyReLU(0.01) throughout (the Keras default slope the seed
model used). With num_classes > 0 both become class-conditional (label embedding into G,
projection D; see conditioning.py). `dense_operands="bfloat16"` rounds the Dense layers'
matmul operands to bf16 and sums in float32 (matmul_conv.operand_dot_general; README,
Speed).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from aigc_jax.models.conditioning import ProjectionHead, append_label_embedding, normalized
from aigc_jax.models.matmul_conv import operand_dot_general


class MLPGenerator(nn.Module):
  """Maps latents (B, Z) [+ labels (B,)] to images (B, H, W, C) in [-1, 1]."""

  image_shape: tuple[int, int, int]
  hidden: Sequence[int] = (128, 256, 512)
  negative_slope: float = 0.01
  num_classes: int = 0
  label_features: int = 32  # Width of the label embedding appended to z.
  dense_operands: str = "float32"  # Operand dtype of the Dense layers' matmuls.

  @nn.compact
  def __call__(self, z: jnp.ndarray, labels: jnp.ndarray | None = None,
               train: bool = True) -> jnp.ndarray:
    del train  # No batch statistics here; the argument keeps the generator interface.
    x = append_label_embedding(z, labels, self.num_classes, self.label_features)
    dot_general = operand_dot_general(self.dense_operands)
    for width in self.hidden:
      x = nn.leaky_relu(nn.Dense(width, dot_general=dot_general)(x), self.negative_slope)
    x = nn.Dense(int(np.prod(self.image_shape)), dot_general=dot_general)(x)
    return jnp.tanh(x).reshape((-1, *self.image_shape))  # (B, H, W, C)


class MLPDiscriminator(nn.Module):
  """Maps images (B, H, W, C) [+ labels (B,)] to one real/fake logit each, shape (B,).

  `groups` is the DCGAN discriminator's interface; no layer here mixes examples.
  """

  hidden: Sequence[int] = (512, 256, 128)
  negative_slope: float = 0.01
  num_classes: int = 0
  norm: str = "none"  # 'none' or 'spectral'.
  dense_operands: str = "float32"  # Operand dtype of the hidden Dense layers' matmuls.

  @nn.compact
  def __call__(self, images: jnp.ndarray, labels: jnp.ndarray | None = None,
               train: bool = True, groups: int = 1) -> jnp.ndarray:
    del groups
    x = images.reshape((images.shape[0], -1))  # (B, H*W*C)
    dot_general = operand_dot_general(self.dense_operands)
    for width in self.hidden:
      x = nn.leaky_relu(normalized(nn.Dense(width, dot_general=dot_general), self.norm, train)(x),
                        self.negative_slope)
    return ProjectionHead(self.num_classes, self.norm)(x, labels, train)
