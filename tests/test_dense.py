"""models.dense.Dense equals flax's Dense in values and gradients, whichever way it stores its kernel."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.models.dense import Dense, stores_out_in


@pytest.mark.parametrize("in_features,out_features", [(8, 24), (24, 8), (16, 16)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_flax_dense_values_and_gradients(in_features, out_features, use_bias):
  ours = Dense(out_features, use_bias=use_bias, bias_init=nn.initializers.normal(1.0))
  flax_dense = nn.Dense(out_features, use_bias=use_bias, bias_init=nn.initializers.normal(1.0))
  x = jax.random.normal(jax.random.key(1), (3, 5, in_features))
  params = ours.init(jax.random.key(0), x)["params"]
  reference = flax_dense.init(jax.random.key(0), x)["params"]
  out_in = stores_out_in(in_features, out_features)
  assert params["kernel"].shape == ((out_features, in_features) if out_in
                                    else (in_features, out_features))
  # The same key initialises the same (in, out) kernel.
  kernel = params["kernel"].T if out_in else params["kernel"]
  np.testing.assert_array_equal(kernel, reference["kernel"])

  target = jax.random.normal(jax.random.key(2), (3, 5, out_features))

  def loss(module, p, x):
    return jnp.sum(jnp.sin(module.apply({"params": p}, x)) * target)

  value, (grad_params, grad_x) = jax.value_and_grad(loss, argnums=(1, 2))(ours, params, x)
  value_ref, (grad_ref, grad_x_ref) = jax.value_and_grad(loss, argnums=(1, 2))(
      flax_dense, reference, x)
  np.testing.assert_allclose(value, value_ref, rtol=1e-5)
  np.testing.assert_allclose(grad_x, grad_x_ref, rtol=1e-5, atol=1e-5)
  grad_kernel = grad_params["kernel"].T if out_in else grad_params["kernel"]
  np.testing.assert_allclose(grad_kernel, grad_ref["kernel"], rtol=1e-5, atol=1e-5)
  if use_bias:
    np.testing.assert_allclose(grad_params["bias"], grad_ref["bias"], rtol=1e-5, atol=1e-5)


def test_computes_in_the_given_dtype_with_float32_parameters():
  layer = Dense(4, dtype=jnp.bfloat16)
  x = jnp.ones((2, 6))
  params = layer.init(jax.random.key(0), x)["params"]
  assert params["kernel"].dtype == jnp.float32
  y, grads = jax.value_and_grad(lambda p: jnp.sum(layer.apply({"params": p}, x)))(params)
  assert layer.apply({"params": params}, x).dtype == jnp.bfloat16
  assert grads["kernel"].dtype == jnp.float32 and jnp.isfinite(y)


@pytest.mark.parametrize("in_features,out_features", [(64, 256), (256, 64)])
def test_bfloat16_operands_give_the_products_of_rounded_operands(in_features, out_features):
  # Both storage layouts: float32 sums of bf16-rounded inputs and weights, float32 results,
  # and gradients within bf16's rounding of the float32 layer's.
  ours = Dense(out_features, operands="bfloat16")
  x = jax.random.normal(jax.random.key(1), (3, 5, in_features))
  params = ours.init(jax.random.key(0), x)["params"]
  rounded = lambda a: a.astype(jnp.bfloat16).astype(jnp.float32)
  kernel = params["kernel"].T if stores_out_in(in_features, out_features) else params["kernel"]
  y = ours.apply({"params": params}, x)
  assert y.dtype == jnp.float32
  np.testing.assert_allclose(y, rounded(x) @ rounded(kernel) + params["bias"], rtol=1e-5,
                             atol=1e-5)
  loss = lambda module: lambda p, x: jnp.sum(module.apply({"params": p}, x) ** 2)
  got = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  want = jax.grad(loss(Dense(out_features)), argnums=(0, 1))(params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == jnp.float32
    assert float(jnp.linalg.norm(g - w) / jnp.linalg.norm(w)) < 1e-2


def dot_operand_types(compiled_text: str) -> set[str]:
  """Element types of the operands of every dot in compiled HLO text (fused or not)."""
  types = set()
  for line in compiled_text.splitlines():
    if " dot(" in line:
      names = re.search(r" dot\(([^)]*)\)", line).group(1).split(", ")
      for name in names:
        declared = re.search(re.escape(name) + r" = (\w+)\[", compiled_text)
        types.add(declared.group(1) if declared else "unknown")
  return types


@pytest.mark.parametrize("in_features,out_features", [(64, 256), (256, 64)])
def test_bfloat16_operands_reach_the_compiled_products(in_features, out_features):
  # All three products of both storage layouts multiply bf16 arrays: handing an (out, in)
  # kernel over transposed once made XLA:CPU run two of them in float32.
  ours = Dense(out_features, operands="bfloat16")
  x = jax.random.normal(jax.random.key(1), (3, 5, in_features))
  params = ours.init(jax.random.key(0), x)["params"]
  loss = lambda p, x: jnp.sum(ours.apply({"params": p}, x) ** 2)
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, x).compile().as_text()
  assert compiled.count(" dot(") == 3
  assert dot_operand_types(compiled) == {"bf16"}
