"""models.attention.attend equals autodiff of the einsum attention in values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.models.attention import attend


def reference(q, k, v, bias, keep):
  scores = jnp.einsum("bthd,bshd->bhts", q, k) + bias
  weights = jax.nn.softmax(scores, axis=-1)
  if keep is not None:
    weights = weights * keep
  return jnp.einsum("bhts,bshd->bthd", weights, v)


@pytest.mark.parametrize("queries,keys", [(6, 6), (2, 7)])  # Training; decoding from a cache.
@pytest.mark.parametrize("dropout", [False, True])
def test_values_and_gradients_equal_autodiff_of_einsums(queries, keys, dropout):
  batch, heads, dim = 3, 2, 4
  q, k, v = (jax.random.normal(jax.random.key(i), (batch, n, heads, dim))
             for i, n in enumerate((queries, keys, keys)))
  start = keys - queries  # Query positions continue the cached ones.
  bias = jnp.where(jnp.arange(keys)[None, :] <= start + jnp.arange(queries)[:, None],
                   0.0, -1e30)
  keep = None
  if dropout:
    keep = jax.random.bernoulli(jax.random.key(5), 0.7, (batch, heads, queries, keys)) / 0.7
  target = jax.random.normal(jax.random.key(6), (batch, queries, heads, dim))

  def loss(fn, q, k, v):
    return jnp.sum(jnp.sin(fn(q, k, v, bias, keep)) * target)

  value, grads = jax.value_and_grad(loss, argnums=(1, 2, 3))(attend, q, k, v)
  value_ref, grads_ref = jax.value_and_grad(loss, argnums=(1, 2, 3))(reference, q, k, v)
  np.testing.assert_allclose(value, value_ref, rtol=1e-5)
  for grad, grad_ref in zip(grads, grads_ref):
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-4, atol=1e-5)


def test_masked_keys_get_no_weight_and_no_gradient():
  q, k, v = (jax.random.normal(jax.random.key(i), (1, 4, 1, 2)) for i in range(3))
  bias = jnp.where(jnp.arange(4)[None, :] <= jnp.arange(4)[:, None], 0.0, -1e30)
  # The first query sees only the first key: its output is that key's value.
  np.testing.assert_allclose(attend(q, k, v, bias, None)[0, 0], v[0, 0], rtol=1e-6)
  # Only the last query sees the last key, so only its output moves the last key's gradient.
  grad_k = jax.grad(lambda k: jnp.sum(attend(q, k, v, bias, None)[:, :3]))(k)
  np.testing.assert_array_equal(grad_k[0, 3], 0.0)
