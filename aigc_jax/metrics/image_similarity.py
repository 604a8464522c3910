"""PSNR and SSIM between image batches in [0, 1], per image."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def psnr(a: jax.Array, b: jax.Array, max_value: float = 1.0) -> jax.Array:
  """10 log10(max^2 / MSE) per image, (B,); +inf for identical images."""
  mse = jnp.mean((a - b).reshape((a.shape[0], -1)) ** 2, axis=-1)
  return 10.0 * jnp.log10(max_value**2 / mse)


def _gaussian_window(size: int, sigma: float) -> jax.Array:
  x = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
  g = jnp.exp(-(x**2) / (2 * sigma**2))
  return g / jnp.sum(g)


def ssim(a: jax.Array, b: jax.Array, max_value: float = 1.0, window: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> jax.Array:
  """Structural similarity (Wang et al. 2004) per image, (B,), NHWC inputs.

  Gaussian 11x11 window with sigma 1.5 over valid positions, averaged over positions and
  channels: the convention of `tf.image.ssim`, which the tests compare against. Images
  smaller than the window use the largest odd window that fits.
  """
  channels = a.shape[-1]
  window = min(window, *(side - (1 - side % 2) for side in a.shape[1:3]))
  g = _gaussian_window(window, sigma)
  kernel = jnp.tile((g[:, None] * g[None, :])[:, :, None, None], (1, 1, 1, channels))

  def blur(x):  # Depthwise: each channel filtered on its own.
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=channels)

  c1, c2 = (k1 * max_value) ** 2, (k2 * max_value) ** 2
  mu_a, mu_b = blur(a), blur(b)
  var_a = blur(a * a) - mu_a**2
  var_b = blur(b * b) - mu_b**2
  cov = blur(a * b) - mu_a * mu_b
  luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
  structure = (2 * cov + c2) / (var_a + var_b + c2)
  return jnp.mean(luminance * structure, axis=(1, 2, 3))
