"""The two feature-network families the image metrics are measured in.

Both map images in [-1, 1] (B, H, W, C) to (features (B, F), logits (B, K)), and carry
the label smoothing their head was trained with, which feature_classifier.unsmoothed
undoes to read class probabilities.

- `ConvClassifier`, for digits: two 4x4 stride-2 convs and a 256-wide dense layer. Three
  epochs give MNIST ~0.99 test accuracy in about a minute.
- `ColourClassifier`, for colour images, where the two-conv net's features are too weak
  for FID or precision/recall to mean anything: a VGG-like BatchNorm stack. On a 2-core
  CPU a conv stack at 32x32 is the cost, so the stem is a patchify layer (2x2
  space-to-depth and a dense layer, 16x16 from the start), followed by one block per
  width: 3x3 conv, 2x2 average pool, BatchNorm, ReLU, 3x3 conv, BatchNorm, ReLU. Features
  are the global max over the last block's map. Average rather than max pooling inside
  the blocks, because XLA:CPU's max-pool gradient (select-and-scatter) cost more than the
  convs here. With `flip_average`, a trained network's features and logits are the mean
  of the image's and its mirror image's: the network sees no difference between a scene
  and its mirror, as the flips it was trained with say it should not, and CIFAR-10 test
  accuracy rises by ~0.8 points for a second forward pass (docs/metrics.md).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.matmul_conv import MatmulConv


class ConvClassifier(nn.Module):
  num_classes: int
  widths: tuple[int, ...] = (32, 64)
  features: int = 256
  label_smoothing: float = 0.0

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False
               ) -> tuple[jnp.ndarray, jnp.ndarray]:
    del train  # No layer behaves differently in training.
    x = images
    for width in self.widths:
      x = nn.relu(MatmulConv(width, (4, 4), (2, 2))(x))
    x = nn.relu(nn.Dense(self.features)(x.reshape((x.shape[0], -1))))
    return x, nn.Dense(self.num_classes)(x)


def space_to_depth(x: jnp.ndarray, block: int = 2) -> jnp.ndarray:
  """(B, H, W, C) -> (B, H/block, W/block, block*block*C): each patch becomes a pixel."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // block, w // block, block * block * c)


class ColourClassifier(nn.Module):
  num_classes: int
  widths: tuple[int, ...] = (64, 128, 256)
  label_smoothing: float = 0.0
  # Logits are divided by this: a small head output early keeps SGD's first steps stable.
  logit_scale: float = 1 / 8
  flip_average: bool = False  # Outside training: average over the image and its mirror.

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False
               ) -> tuple[jnp.ndarray, jnp.ndarray]:
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)
    mirrored = self.flip_average and not train
    if mirrored:  # One pass over both views; they are averaged at the end.
      images = jnp.concatenate([images, images[:, :, ::-1]])
    x = nn.Dense(self.widths[0], use_bias=False)(space_to_depth(images))
    x = nn.relu(norm()(x))
    for width in self.widths:
      x = MatmulConv(width, (3, 3), use_bias=False)(x)
      x = nn.relu(norm()(nn.avg_pool(x, (2, 2), (2, 2))))
      x = nn.relu(norm()(MatmulConv(width, (3, 3), use_bias=False)(x)))
    features = x.max(axis=(1, 2))
    logits = nn.Dense(self.num_classes, use_bias=False)(features) * self.logit_scale
    if mirrored:
      features, logits = (0.5 * (both[:len(both) // 2] + both[len(both) // 2:])
                          for both in (features, logits))
    return features, logits
