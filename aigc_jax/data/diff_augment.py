"""Differentiable augmentation for GAN training (DiffAugment; Zhao et al. 2020).

A discriminator trained on few (or freshly cleaned, hence fewer) images memorises them.
Augmenting only D's real inputs would teach G to produce augmented images; DiffAugment
applies the same random family of transforms to real and generated images, in JAX inside
the step, so G's gradient flows back through the transform. Images are in [-1, 1].
Policy: comma-separated names from AUGMENTATIONS, e.g. 'color,translation,cutout'.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from aigc_jax.errors import InvalidInputError


def _per_example(rng, images, low=0.0, high=1.0):
  return jax.random.uniform(rng, (images.shape[0], 1, 1, 1), images.dtype, low, high)


def color(rng: jax.Array, images: jnp.ndarray) -> jnp.ndarray:
  """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5) per image."""
  brightness, saturation, contrast = jax.random.split(rng, 3)
  x = images + _per_example(brightness, images, -0.5, 0.5)
  channel_mean = jnp.mean(x, axis=-1, keepdims=True)
  x = (x - channel_mean) * _per_example(saturation, images, 0.0, 2.0) + channel_mean
  image_mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - image_mean) * _per_example(contrast, images, 0.5, 1.5) + image_mean


def translation(rng: jax.Array, images: jnp.ndarray, ratio: float = 0.125) -> jnp.ndarray:
  """Shifts each image by up to ratio * side pixels per axis, filling with zeros."""
  _, height, width, _ = images.shape
  pad_h, pad_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
  rng_h, rng_w = jax.random.split(rng)
  shift_h = jax.random.randint(rng_h, (images.shape[0],), -pad_h, pad_h + 1)
  shift_w = jax.random.randint(rng_w, (images.shape[0],), -pad_w, pad_w + 1)
  padded = jnp.pad(images, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))

  def crop(image, dh, dw):
    return jax.lax.dynamic_slice(image, (pad_h - dh, pad_w - dw, 0), (height, width,
                                                                      image.shape[-1]))

  return jax.vmap(crop)(padded, shift_h, shift_w)


def cutout(rng: jax.Array, images: jnp.ndarray, ratio: float = 0.5) -> jnp.ndarray:
  """Zeroes one (ratio * side)-square per image at a random centre (may hang off the edge)."""
  _, height, width, _ = images.shape
  size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
  rng_h, rng_w = jax.random.split(rng)
  top = jax.random.randint(rng_h, (images.shape[0], 1, 1), 0, height + (1 - size_h % 2))
  left = jax.random.randint(rng_w, (images.shape[0], 1, 1), 0, width + (1 - size_w % 2))
  rows = jnp.arange(height)[None, :, None] - (top - size_h // 2)
  cols = jnp.arange(width)[None, None, :] - (left - size_w // 2)
  inside = (rows >= 0) & (rows < size_h) & (cols >= 0) & (cols < size_w)  # (B, H, W)
  return images * (1.0 - inside[..., None].astype(images.dtype))


AUGMENTATIONS: dict[str, Callable[[jax.Array, jnp.ndarray], jnp.ndarray]] = {
    "color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> list[str]:
  names = [n.strip() for n in policy.split(",") if n.strip()]
  unknown = [n for n in names if n not in AUGMENTATIONS]
  if unknown:
    raise InvalidInputError(f"Unknown DiffAugment op(s) {unknown}; available: "
                            f"{sorted(AUGMENTATIONS)}.")
  return names


def diff_augment(rng: jax.Array, images: jnp.ndarray, policy: str) -> jnp.ndarray:
  """Applies the policy's ops in order, each with its own key; '' is the identity."""
  for i, name in enumerate(parse_policy(policy)):
    images = AUGMENTATIONS[name](jax.random.fold_in(rng, i), images)
  return images
