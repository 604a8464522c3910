"""DCGAN (Radford et al. 2015): transposed-conv generator, strided-conv discriminator.

Generator: z [+ label embedding] -> dense to (s, s, widths[0]) -> 4x4 transposed convs
through widths[1:] -> 4x4 transposed conv to C channels, tanh; BatchNorm + ReLU between
(with `conditional_norm`, class-conditional BatchNorm: a per-class gain and bias).
The start side s is the image side divided by 2 as often as the side and the number of
transposed convs allow, so 32x32 runs 4 -> 8 -> 16 -> 32 and 28x28 runs 7 -> 14 -> 28 (any
stride-1 convs left over come last): the data is never resized. The dense projection is
the 1x1 -> s x s transposed conv of the paper written as the matmul it is.

Discriminator: 4x4 stride-2 convs with LeakyReLU(0.2) (BatchNorm after all but the first,
or spectral norm on every layer, or nothing -- WGAN-GP wants no BatchNorm in its critic),
then a linear (projection, if conditional) head on the flattened features.
Transposed convs are MatmulConvTranspose: nn.ConvTranspose's maths and parameters, with
gradients XLA:CPU computes ~7x faster (see matmul_conv.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.errors import InvalidInputError
from aigc_jax.models.conditioning import (ConditionalBatchNorm, ProjectionHead,
                                          append_label_embedding, normalized)
from aigc_jax.models.grouped_batch_norm import GroupedBatchNorm
from aigc_jax.models.matmul_conv import MatmulConv, MatmulConvTranspose

# Radford et al.: BatchNorm momentum as PyTorch's 0.1 update rate; N(0, 0.02) weights.
_BN_MOMENTUM = 0.9
_KERNEL_INIT = nn.initializers.normal(0.02)
D_NORMS = ("batch", "spectral", "none")


def upsampling_plan(side: int, num_layers: int) -> tuple[int, list[int]]:
  """(start side, stride of each of num_layers transposed convs) reaching `side`."""
  doublings = 0
  while doublings < num_layers and side % 2 ** (doublings + 1) == 0:
    doublings += 1
  return side // 2 ** doublings, [2] * doublings + [1] * (num_layers - doublings)


class DCGANGenerator(nn.Module):
  """Maps latents (B, Z) [+ labels (B,)] to images (B, H, W, C) in [-1, 1]."""

  image_shape: tuple[int, int, int]
  widths: Sequence[int] = (256, 128, 64)
  num_classes: int = 0
  label_features: int = 32
  batch_axis: str | None = None  # pmap axis over which BatchNorm statistics are taken.
  conditional_norm: bool = False  # Class-conditional BatchNorm (needs num_classes > 0).
  # Share of the running statistics kept at each training-mode call; 0 makes them the
  # statistics of the batch just seen (gan.own_statistics measures G's that way).
  bn_momentum: float = _BN_MOMENTUM
  conv_operands: str = "float32"  # MatmulConv.operands of the transposed convs.

  @nn.compact
  def __call__(self, z: jnp.ndarray, labels: jnp.ndarray | None = None,
               train: bool = True) -> jnp.ndarray:
    (height, width, channels), widths = self.image_shape, tuple(self.widths)
    start, strides = upsampling_plan(height, len(widths))
    if width != height:
      raise InvalidInputError(f"DCGAN expects square images; got {height}x{width}.")
    if self.conditional_norm and not self.num_classes:
      raise InvalidInputError("Class-conditional BatchNorm needs a conditional generator: "
                              "set model.conditional=True or model.g_conditional_norm=False.")

    def norm(x):
      if self.conditional_norm:
        x = ConditionalBatchNorm(self.num_classes, self.bn_momentum, self.batch_axis)(
            x, labels, train)
      else:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         axis_name=self.batch_axis)(x)
      return nn.relu(x)

    x = append_label_embedding(z, labels, self.num_classes, self.label_features)
    x = nn.Dense(start * start * widths[0], use_bias=False, kernel_init=_KERNEL_INIT)(x)
    x = norm(x.reshape((-1, start, start, widths[0])))  # (B, s, s, widths[0])
    for features, stride in zip((*widths[1:], channels), strides):
      x = MatmulConvTranspose(features, (4, 4), (stride, stride),
                              use_bias=features == channels, kernel_init=_KERNEL_INIT,
                              operands=self.conv_operands)(x)
      x = x if features == channels else norm(x)
    return jnp.tanh(x)  # (B, H, W, C)


class DCGANDiscriminator(nn.Module):
  """Maps images (B, H, W, C) [+ labels (B,)] to one real/fake logit each, shape (B,).

  `groups` > 1 splits the batch into that many equal consecutive parts that BatchNorm
  normalises each on its own (the GAN step's real and fake halves; grouped_batch_norm.py).
  """

  widths: Sequence[int] = (64, 128, 256)
  num_classes: int = 0
  norm: str = "batch"  # One of D_NORMS.
  negative_slope: float = 0.2
  batch_axis: str | None = None  # pmap axis over which BatchNorm statistics are taken.
  conv_operands: str = "float32"  # MatmulConv.operands of the convs.

  @nn.compact
  def __call__(self, images: jnp.ndarray, labels: jnp.ndarray | None = None,
               train: bool = True, groups: int = 1) -> jnp.ndarray:
    if self.norm not in D_NORMS:
      raise InvalidInputError(f"Unknown discriminator norm '{self.norm}'; choose from {D_NORMS}.")
    x = images
    for i, features in enumerate(self.widths):
      conv = MatmulConv(features, (4, 4), (2, 2), use_bias=self.norm != "batch" or i == 0,
                        kernel_init=_KERNEL_INIT, operands=self.conv_operands)
      x = normalized(conv, self.norm, train)(x)
      if self.norm == "batch" and i > 0:
        x = GroupedBatchNorm(_BN_MOMENTUM, axis_name=self.batch_axis,
                             name=f"BatchNorm_{i - 1}")(x, train, groups)
      x = nn.leaky_relu(x, self.negative_slope)
    x = x.reshape((x.shape[0], -1))  # (B, h*w*widths[-1])
    return ProjectionHead(self.num_classes, self.norm)(x, labels, train)
