"""models.layer_norm.LayerNorm equals flax's LayerNorm in parameters, values and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.models.layer_norm import LayerNorm


@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_flax_layer_norm(use_bias):
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (2, 5, 16))
  ours, flax_norm = LayerNorm(use_bias=use_bias), nn.LayerNorm(use_bias=use_bias)
  params = ours.init(jax.random.key(1), x)["params"]
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(
      jnp.shape, flax_norm.init(jax.random.key(1), x)["params"])
  # Parameters away from their initial values, so scale and bias both matter.
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)
  target = jax.random.normal(jax.random.key(3), x.shape)

  def loss(module, p, x):
    return jnp.sum(jnp.sin(module.apply({"params": p}, x)) * target)

  value, grads = jax.value_and_grad(loss, argnums=(1, 2))(ours, params, x)
  value_ref, grads_ref = jax.value_and_grad(loss, argnums=(1, 2))(flax_norm, params, x)
  np.testing.assert_allclose(value, value_ref, rtol=1e-5)
  for grad, grad_ref in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-4, atol=1e-4)


def test_bfloat16_output_with_float32_statistics():
  x = 100.0 + jax.random.normal(jax.random.key(0), (4, 8))  # Large mean, unit spread.
  norm = LayerNorm(dtype=jnp.bfloat16)
  params = norm.init(jax.random.key(1), x)
  y = norm.apply(params, x)
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(y.astype(jnp.float32), nn.LayerNorm().apply(params, x),
                             atol=2e-2)
  grad = jax.grad(lambda x: jnp.sum(norm.apply(params, x).astype(jnp.float32) ** 2))(x)
  assert grad.dtype == x.dtype and bool(jnp.all(jnp.isfinite(grad)))
