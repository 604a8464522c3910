"""GAN losses, gradient penalties, spectral norm and DiffAugment against hand-computed values."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from aigc_jax.data.diff_augment import cutout, diff_augment, translation
from aigc_jax.losses.gan import get_gan_loss
from aigc_jax.losses.gan_penalties import get_d_regularizers, l2_penalty, r1, wgan_gp
from aigc_jax.models.mlp_gan import MLPDiscriminator

CONFIG = ml_collections.ConfigDict({"r1_gamma": 4.0, "gp_weight": 10.0})
REAL = jnp.array([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]]).reshape(2, 1, 3, 1)
FAKE = jnp.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]).reshape(2, 1, 3, 1)
W = jnp.array([3.0, 0.0, 4.0]).reshape(1, 3, 1)  # ||W|| = 5.


def linear_d(x):
  return jnp.sum(x * W, axis=(1, 2, 3))  # Input gradient W everywhere.


def quadratic_d(x):
  return 0.5 * jnp.sum(x**2, axis=(1, 2, 3))  # Input gradient x.


def test_hinge_and_wasserstein_losses():
  real, fake = jnp.array([2.0, 0.5]), jnp.array([-3.0, 0.0])
  hinge = get_gan_loss("hinge")
  # relu(1 - r): [0, 0.5]; relu(1 + f): [0, 1].
  np.testing.assert_allclose(hinge.discriminator(real, fake), 0.25 + 0.5)
  np.testing.assert_allclose(hinge.generator(fake), 1.5)
  wasserstein = get_gan_loss("wasserstein")
  np.testing.assert_allclose(wasserstein.discriminator(real, fake), -1.5 - 1.25)
  np.testing.assert_allclose(wasserstein.generator(fake), 1.5)


def test_r1_is_half_gamma_times_squared_input_gradient_on_reals():
  rng = jax.random.key(0)
  np.testing.assert_allclose(r1(linear_d, REAL, FAKE, rng, CONFIG), 0.5 * 4.0 * 25.0)
  # Gradient = x: squared norms 9 and 25 -> mean 17.
  np.testing.assert_allclose(r1(quadratic_d, REAL, FAKE, rng, CONFIG), 0.5 * 4.0 * 17.0)


def test_wgan_gp_penalises_gradient_norms_away_from_one():
  rng = jax.random.key(0)
  np.testing.assert_allclose(wgan_gp(linear_d, REAL, FAKE, rng, CONFIG), 10.0 * (5.0 - 1.0)**2,
                             rtol=1e-6)
  # Real == fake pins the interpolate to the real points: norms 3 and 5.
  np.testing.assert_allclose(wgan_gp(quadratic_d, REAL, REAL, rng, CONFIG),
                             10.0 * ((3.0 - 1.0)**2 + (5.0 - 1.0)**2) / 2, rtol=1e-5)
  # Otherwise the interpolate lies between: x_hat = e*real + (1-e)*fake with e ~ U(0, 1).
  e = jax.random.uniform(rng, (2, 1, 1, 1))
  norms = jnp.linalg.norm((e * REAL + (1 - e) * FAKE).reshape(2, -1), axis=1)
  np.testing.assert_allclose(wgan_gp(quadratic_d, REAL, FAKE, rng, CONFIG),
                             10.0 * jnp.mean((norms - 1.0)**2), rtol=1e-5)


def test_regularizer_names_and_l2_penalty():
  assert get_d_regularizers("none") == {}
  assert list(get_d_regularizers("r1,wgan_gp")) == ["r1", "wgan_gp"]
  with pytest.raises(ValueError, match="Unknown discriminator regulariser.*'r2'.*r1"):
    get_d_regularizers("r2")
  params = {"a": jnp.array([3.0, 4.0]), "b": {"c": jnp.array([[1.0]])}}
  np.testing.assert_allclose(l2_penalty(params), 0.5 * 26.0)


def test_spectral_norm_divides_each_layer_by_its_largest_singular_value():
  d = MLPDiscriminator(hidden=(6,), norm="spectral")
  x = jax.random.normal(jax.random.key(1), (5, 2, 2, 1))
  variables = d.init(jax.random.key(0), x, train=False)
  for _ in range(50):  # Power iteration converges over training steps.
    _, updates = d.apply(variables, x, mutable=["batch_stats"])
    variables = {**variables, **updates}
  params = variables["params"]
  kernel = params["Dense_0"]["kernel"]
  sigma = np.linalg.svd(np.asarray(kernel), compute_uv=False)[0]
  hidden = nn.leaky_relu(x.reshape(5, -1) @ (kernel / sigma)
                         + params["Dense_0"]["bias"], 0.01)
  head = params["ProjectionHead_0"]["Dense_0"]
  head_sigma = np.linalg.norm(np.asarray(head["kernel"]))  # A (6, 1) matrix: its norm.
  expected = (hidden @ (head["kernel"] / head_sigma) + head["bias"])[:, 0]
  got = d.apply(variables, x, train=False)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_translation_shifts_content_and_fills_zeros():
  images = jnp.arange(1, 2 * 8 * 8 + 1, dtype=jnp.float32).reshape(2, 8, 8, 1)
  shifted = translation(jax.random.key(3), images)
  for original, moved in zip(np.asarray(images), np.asarray(shifted)):
    matches = [(dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)
               if np.array_equal(np.roll(original, (dy, dx), (0, 1))[max(dy, 0):8 + min(dy, 0),
                                                                   max(dx, 0):8 + min(dx, 0)],
                                 moved[max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)])]
    assert len(matches) == 1  # Exactly one shift of at most 8/8 = 1 pixel explains it.
    dy, dx = matches[0]
    assert np.count_nonzero(moved == 0) == 8 * abs(dy) + 8 * abs(dx) - abs(dy * dx)


def test_cutout_zeroes_at_most_a_half_side_square_and_augment_is_differentiable():
  images = jnp.ones((64, 8, 8, 1))
  zeros = np.sum(np.asarray(cutout(jax.random.key(0), images)) == 0, axis=(1, 2, 3))
  assert zeros.max() == 16 and zeros.min() > 0  # A 4x4 square, clipped at the border.
  assert jnp.array_equal(diff_augment(jax.random.key(0), images, ""), images)
  grads = jax.grad(lambda x: jnp.sum(diff_augment(jax.random.key(0), x,
                                                  "color,translation,cutout")))(images)
  assert grads.shape == images.shape and float(jnp.abs(grads).sum()) > 0
  with pytest.raises(ValueError, match="Unknown DiffAugment op.*'flip'"):
    diff_augment(jax.random.key(0), images, "flip")
