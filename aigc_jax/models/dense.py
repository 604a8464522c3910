"""A dense layer whose weight gradient XLA:CPU computes at matmul speed.

The weight gradient of y = x @ W contracts over the rows of x and dy, so one operand of
that matmul is read transposed. XLA:CPU is fast at narrow^T @ wide, (768, 128)^T @ (768,
512), and slow at wide^T @ narrow: for the down-projection of a Transformer MLP, 512 ->
128 over 768 rows, it took 1.95 ms on one core of this 2-core VM against 0.98 ms for the
same FLOPs the other way round, and autodiff of a plain `x @ W` also left an extra
transposed copy of an operand in the step. So the kernel of a layer that narrows (in >
out) is stored (out, in), as PyTorch stores every kernel, and the VJP is written by hand
so that each weight gradient is narrow^T @ wide on 2-D row blocks. In the `cpu` char GPT
this took the train step from 34-35 to 30.5 ms on 2 cores, measured back to back.

Values and gradients equal `flax.linen.Dense` with the kernel transposed where it is
stored (out, in); the initialiser sees the (in, out) shape, so the same key gives the same
numbers (tests/test_dense.py).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from aigc_jax.models.matmul_conv import operand_dot_general, weight_dims


def _rows(a: jax.Array) -> jax.Array:
  """(..., F) -> (N, F): the batch and time axes of activations as one row axis."""
  return a.reshape(-1, a.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def matmul(x: jax.Array, kernel: jax.Array, out_in: bool) -> jax.Array:
  """x (..., I) @ kernel, the kernel stored (O, I) if `out_in` else (I, O)."""
  return x @ (kernel.T if out_in else kernel)


def _matmul_fwd(x, kernel, out_in):
  return matmul(x, kernel, out_in), (x, kernel)


def _matmul_bwd(out_in, residuals, dy):
  """Input gradient as usual; weight gradient as narrow^T @ wide in the kernel's layout."""
  x, kernel = residuals
  if out_in:
    return dy @ kernel, _rows(dy).T @ _rows(x)
  return dy @ kernel.T, _rows(x).T @ _rows(dy)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


def stores_out_in(in_features: int, out_features: int) -> bool:
  """Whether `Dense` keeps this layer's kernel as (out, in)."""
  return in_features > out_features


class Dense(nn.Module):
  """`flax.linen.Dense` over the last axis, kernel stored (out, in) when the layer narrows."""

  features: int
  use_bias: bool = True
  dtype: Any = None  # Compute dtype; parameters stay float32.
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  # Matmul operands (matmul_conv.OPERAND_DTYPES): "bfloat16" rounds inputs and weights to
  # bf16 and sums in float32 through matmul_conv's bf16 matmul (row-major dots, W read in
  # place); "auto" is bf16 on a CPU with bf16 matmul units.
  operands: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    in_features = x.shape[-1]
    out_in = stores_out_in(in_features, self.features)

    def init(key, shape):
      kernel = self.kernel_init(key, (in_features, self.features), jnp.float32)
      return kernel.T if out_in else kernel

    shape = (self.features, in_features) if out_in else (in_features, self.features)
    kernel = self.param("kernel", init, shape)
    bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    dot_general = operand_dot_general(self.operands)
    if dot_general is jax.lax.dot_general:
      y = matmul(x, kernel, out_in)
    else:
      y = dot_general(_rows(x), kernel, weight_dims(out_in))
      y = y.reshape(*x.shape[:-1], self.features)
    return y + bias if bias is not None else y
