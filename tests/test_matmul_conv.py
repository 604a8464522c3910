"""The matmul-based convolutions equal flax's Conv / ConvTranspose, outputs and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.errors import InvalidInputError
from aigc_jax.models import matmul_conv
from aigc_jax.models.matmul_conv import (MatmulConv, MatmulConvTranspose, all_taps_at_once,
                                         concatenated_taps)


def assert_same_module(ours, reference, x):
  params = reference.init(jax.random.key(0), x)
  assert (jax.tree.map(np.shape, ours.init(jax.random.key(0), x))
          == jax.tree.map(np.shape, params))
  np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda m: lambda p, x: (m.apply(p, x) ** 2).sum()
  got = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  want = jax.grad(loss(reference), argnums=(0, 1))(params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ours,reference,kernel,stride,shape", [
    (MatmulConvTranspose, nn.ConvTranspose, *case) for case in [
        (3, 2, (2, 7, 7, 3)), (4, 2, (2, 7, 5, 3)), (4, 2, (1, 4, 4, 8)), (5, 2, (2, 3, 6, 2)),
        (4, 1, (2, 6, 6, 3)), (3, 3, (1, 4, 5, 2)),
        # All taps in one matmul (kh * kw * 4 features <= input channels).
        (4, 2, (2, 7, 7, 64)), (3, 2, (1, 5, 6, 40))]] + [
    (MatmulConv, nn.Conv, *case) for case in [
        (4, 2, (2, 28, 28, 1)), (4, 2, (2, 7, 7, 3)), (3, 2, (1, 8, 5, 2)), (4, 1, (2, 6, 5, 3)),
        (5, 3, (1, 10, 7, 2)), (1, 1, (1, 3, 3, 4))]])
def test_matches_flax(ours, reference, kernel, stride, shape):
  x = jax.random.normal(jax.random.key(1), shape)
  assert_same_module(ours(4, (kernel, kernel), (stride, stride)),
                     reference(4, (kernel, kernel), (stride, stride)), x)


def penalty_grads(module, params, x):
  """What R1 and WGAN-GP take: the parameter gradient of a squared input gradient."""
  input_grad = jax.grad(lambda p, x: (module.apply(p, x) ** 2).sum(), argnums=1)
  return jax.jit(jax.grad(lambda p: (input_grad(p, x) ** 2).sum()))(params)


@pytest.mark.parametrize("ours,reference", [(MatmulConv, nn.Conv),
                                            (MatmulConvTranspose, nn.ConvTranspose)])
def test_gradient_penalties_match_flax(ours, reference):
  # R1 and WGAN-GP differentiate D's input gradient again: the hand-written VJP must be
  # differentiable like autodiff's.
  x = jax.random.normal(jax.random.key(2), (2, 8, 8, 3))
  params = reference(4, (4, 4), (2, 2)).init(jax.random.key(0), x)
  got, want = (penalty_grads(m(4, (4, 4), (2, 2)), params, x) for m in (ours, reference))
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_each_layer_takes_the_form_that_moves_less_memory():
  # A generator's last layer (many channels in, few out) computes all taps at once.
  assert all_taps_at_once((4, 4, 128, 1)) and all_taps_at_once((4, 4, 64, 3))
  assert not all_taps_at_once((4, 4, 256, 128))
  # A discriminator's first layer (after space-to-depth: 2x2 taps over 4 channels)
  # concatenates its taps' inputs; wider inputs take one matmul per tap.
  assert concatenated_taps((2, 2, 4, 64)) and concatenated_taps((2, 2, 12, 64))
  assert not concatenated_taps((2, 2, 256, 128))


def relative_error(got, want) -> float:
  return float(np.linalg.norm(np.ravel(got) - np.ravel(want)) / np.linalg.norm(np.ravel(want)))


# Every form in bf16 (both widths >= BF16_MIN_WIDTH): per-tap and all-taps transposed
# convs (64 -> 64 per tap; 256 -> 4x4x4 at once), concatenated and per-tap convs (4x4
# windows of 4 channels -> 64; 4 windows of 2x2x32 -> 64 each).
BF16_CASES = [(MatmulConvTranspose, nn.ConvTranspose, 64, (2, 5, 5, 64)),
              (MatmulConvTranspose, nn.ConvTranspose, 4, (2, 5, 5, 256)),
              (MatmulConv, nn.Conv, 64, (2, 8, 8, 4)),
              (MatmulConv, nn.Conv, 64, (2, 8, 8, 32))]


@pytest.mark.parametrize("ours,reference,features,shape", BF16_CASES)
def test_bfloat16_operands(ours, reference, features, shape):
  x = jax.random.normal(jax.random.key(1), shape)
  module = ours(features, (4, 4), (2, 2), operands="bfloat16")
  flax_module = reference(features, (4, 4), (2, 2))
  params = flax_module.init(jax.random.key(0), x)
  rounded = lambda tree: jax.tree.map(lambda a: a.astype(jnp.bfloat16).astype(jnp.float32), tree)
  # The products of bf16-rounded operands, summed in float32; the result stays float32.
  y = module.apply(params, x)
  assert y.dtype == jnp.float32
  np.testing.assert_allclose(y, flax_module.apply(rounded(params), rounded(x)),
                             rtol=1e-5, atol=1e-5)
  # Gradients (the output gradient is rounded too) within bf16's rounding of float32's.
  loss = lambda m: lambda p, x: (m.apply(p, x) ** 2).sum()
  got = jax.jit(jax.grad(loss(module), argnums=(0, 1)))(params, x)
  want = jax.grad(loss(flax_module), argnums=(0, 1))(params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == jnp.float32 and relative_error(g, w) < 1e-2


@pytest.mark.parametrize("ours,reference", [(MatmulConv, nn.Conv),
                                            (MatmulConvTranspose, nn.ConvTranspose)])
def test_bfloat16_operands_take_gradient_penalties(ours, reference):
  # R1 differentiates the bf16 backward pass again; XLA must still compile its dots.
  x = jax.random.normal(jax.random.key(2), (2, 8, 8, 64))
  params = reference(64, (4, 4), (2, 2)).init(jax.random.key(0), x)
  got = penalty_grads(ours(64, (4, 4), (2, 2), operands="bfloat16"), params, x)
  want = penalty_grads(reference(64, (4, 4), (2, 2)), params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert relative_error(g, w) < 2e-2


@pytest.mark.parametrize("ours,reference,shape", [
    (MatmulConv, nn.Conv, (3, 8, 8, 32)), (MatmulConvTranspose, nn.ConvTranspose, (3, 5, 5, 64))])
def test_bfloat16_operands_give_per_example_gradients(ours, reference, shape):
  # DP-SGD takes vmap(grad): the batched bf16 dots must still compile and be right.
  x = jax.random.normal(jax.random.key(1), shape)
  params = reference(64, (4, 4), (2, 2)).init(jax.random.key(0), x[:1])

  def per_example_grads(module):
    grad = jax.grad(lambda p, example: (module.apply(p, example[None]) ** 2).sum())
    return jax.jit(jax.vmap(grad, in_axes=(None, 0)))(params, x)

  got = per_example_grads(ours(64, (4, 4), (2, 2), operands="bfloat16"))
  want = per_example_grads(reference(64, (4, 4), (2, 2)))
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.shape[0] == shape[0] and relative_error(g, w) < 1e-2


@pytest.mark.parametrize("rows", [12, 13])  # Blocks that divide the rows; a padded last one.
@pytest.mark.parametrize("block_elements", [40, 2 ** 18])
def test_bfloat16_weight_gradients_in_row_blocks(monkeypatch, rows, block_elements):
  monkeypatch.setattr(matmul_conv, "TRANSPOSE_BLOCK_ELEMENTS", block_elements)
  x, grad = (jax.random.normal(jax.random.key(k), (rows, width)) for k, width in [(0, 8), (1, 5)])
  got = matmul_conv._blocked_weight_grad(x, grad, jnp.bfloat16)
  rounded = lambda a: a.astype(jnp.bfloat16).astype(jnp.float32)
  np.testing.assert_allclose(got, rounded(x).T @ rounded(grad), rtol=1e-5, atol=1e-5)


def test_narrow_matmuls_keep_float32_operands():
  # 1 -> 16 channels: the matmul is narrower than BF16_MIN_WIDTH, so the output is float32's.
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
  params = MatmulConv(16, (4, 4), (2, 2)).init(jax.random.key(0), x)
  np.testing.assert_array_equal(
      MatmulConv(16, (4, 4), (2, 2), operands="bfloat16").apply(params, x),
      MatmulConv(16, (4, 4), (2, 2)).apply(params, x))


def test_unknown_operand_dtype_is_named():
  with pytest.raises(InvalidInputError, match="float16.*bfloat16"):
    MatmulConv(4, (4, 4), (2, 2), operands="float16").init(jax.random.key(0),
                                                            np.zeros((1, 8, 8, 1)))


def test_bf16_matmul_units_are_told_by_whole_cpu_flags():
  assert matmul_conv.lists_bf16_matmul_units("flags\t\t: fpu sse avx512f amx_bf16 amx_tile\n")
  assert matmul_conv.lists_bf16_matmul_units("flags : avx512f avx512_bf16\n")
  assert not matmul_conv.lists_bf16_matmul_units("flags : avx512f avx512_vnni amx_int8\n")


@pytest.mark.parametrize("backend,flags,expected", [
    ("cpu", "flags : avx512f amx_bf16", jnp.bfloat16),
    ("cpu", "flags : avx2 fma", jnp.float32),
    ("gpu", "flags : avx512f amx_bf16", jnp.float32)])  # Accelerators keep their precision.
def test_auto_operands_take_bf16_only_on_a_cpu_with_bf16_units(monkeypatch, backend, flags,
                                                               expected):
  monkeypatch.setattr(matmul_conv, "_cpuinfo", lambda: flags)
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  matmul_conv.auto_operands.cache_clear()
  try:
    assert matmul_conv.operand_dtype("auto") == expected
  finally:
    matmul_conv.auto_operands.cache_clear()  # The real machine's answer for later tests.


# (outputs, their side): one output over all taps at non-negative offsets (a strided conv
# after space-to-depth); two outputs whose taps read outside the input (transposed conv
# phases), at the input's side.
SHIFTED_READS = [((((0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1)),), (4, 4)),
                 ((((0, -1, 0), (2, 0, 1)), ((1, 1, -1), (3, 0, 0))), (5, 5))]


@pytest.mark.parametrize("outputs,out_shape", SHIFTED_READS)
@pytest.mark.parametrize("chunk_elements", [2 ** 21, 16_000])  # The batch at once; 2 chunks.
def test_bfloat16_shifted_products_equal_per_tap_matmuls_read_in_place(
    monkeypatch, outputs, out_shape, chunk_elements):
  # All taps' products at every input pixel, summed where each output reads them, equal
  # each tap's own bf16 matmul read at its offset (zero outside the input); so do the
  # gradients, taken from the output gradients placed back per tap.
  monkeypatch.setattr(matmul_conv, "PRODUCT_CHUNK_ELEMENTS", chunk_elements)
  x = jax.random.normal(jax.random.key(0), (4, 5, 5, 64))
  taps = jax.random.normal(jax.random.key(1), (4, 64, 80))
  weights = jax.random.normal(jax.random.key(2), (4, *out_shape, len(outputs), 80))
  shifted = lambda x, taps: matmul_conv._bf16_shifted_products(
      x, taps, jnp.dtype(jnp.bfloat16), outputs, out_shape, x.dtype, taps.dtype)

  def read(product, a, c):  # product[:, m + a, n + c], zero outside.
    padded = jnp.pad(product, ((0, 0), (8, 8), (8, 8), (0, 0)))
    return padded[:, 8 + a:8 + a + out_shape[0], 8 + c:8 + c + out_shape[1]]

  per_tap = lambda x, taps: jnp.stack(
      [sum(read(matmul_conv._matmul(x, taps[k], jnp.bfloat16), a, c) for k, a, c in terms)
       for terms in outputs], axis=3)
  np.testing.assert_allclose(shifted(x, taps), per_tap(x, taps), rtol=1e-5, atol=1e-4)
  loss = lambda products: lambda x, taps: jnp.sum(weights * products(x, taps))
  got = jax.grad(loss(shifted), argnums=(0, 1))(x, taps)
  want = jax.grad(loss(per_tap), argnums=(0, 1))(x, taps)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_shifted_products_read_every_tap_once():
  with pytest.raises(ValueError, match="exactly one"):
    matmul_conv._bf16_shifted_products(jnp.zeros((1, 2, 2, 64)), jnp.zeros((2, 64, 64)),
                                       jnp.dtype(jnp.bfloat16), (((0, 0, 0),),), (2, 2),
                                       jnp.float32, jnp.float32)
