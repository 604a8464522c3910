"""Image similarity metrics against TensorFlow's reference implementations."""

import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from aigc_jax.metrics.image_similarity import psnr, ssim


def test_psnr_and_ssim_match_tensorflow():
  rng = np.random.default_rng(0)
  a = rng.uniform(0, 1, (3, 28, 28, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
  np.testing.assert_allclose(psnr(jnp.asarray(a), jnp.asarray(b)),
                             tf.image.psnr(a, b, max_val=1.0).numpy(), rtol=1e-4)
  np.testing.assert_allclose(ssim(jnp.asarray(a), jnp.asarray(b)),
                             tf.image.ssim(a, b, max_val=1.0).numpy(), rtol=1e-3)


def test_identical_images_have_perfect_scores():
  a = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 1)), jnp.float32)
  assert np.all(np.isinf(psnr(a, a)))
  np.testing.assert_allclose(ssim(a, a), 1.0, rtol=1e-5)
  small = a[:, :8, :8]  # Smaller than the 11x11 window: a smaller window is used.
  np.testing.assert_allclose(ssim(small, small), 1.0, rtol=1e-5)
  assert np.all(ssim(small, 1 - small) < 1.0)
