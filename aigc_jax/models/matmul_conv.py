"""Strided and transposed convolutions written as matmuls plus sums of shifted slices.

XLA:CPU's convolutions are far from its matmul speed on the small feature maps of
MNIST/CIFAR models, and pathological for strided kernels' gradients (measured here: a
4x4 stride-2 conv, 7x7x128 -> 256 channels at batch 256, forward 32 ms but forward +
backward 883 ms; a 4x4 stride-2 transposed conv 7x7x256 -> 128 ran at 16 GFLOP/s against a
~150 GFLOP/s matmul). Every tap of a convolution is a (pixels, I) x (I, O) matmul with
one slice of the kernel; the output is a sum of shifted slices of those products. Its
gradients are again matmuls and slices, which XLA:CPU runs near its matmul speed, and the
FLOPs are those of the convolution.

- Transposed conv (output side = stride * input side, 'SAME'): output pixel s*m + a only
  meets kernel taps t with (a + t - pad_low) divisible by s, from input pixel
  m + (a + t - pad_low) / s, so each of the s*s output phases sums a few shifted slices.
- Strided conv ('SAME'): space-to-depth by the stride turns it into a stride-1 conv with
  ceil(k/s) taps per side over s*s*I channels, then the same product-and-shift.

On this CPU the step is bound by memory traffic as much as by FLOPs, so the form of each
layer follows what it moves (forward + backward, batch 128-256, 2 cores): where the taps'
products are no wider than the input (kh*kw*O <= I: a generator's last layer), one matmul
computes all taps at once instead of reading the input once per tap (14x14x128 -> 28x28x1:
5.2 ms against 18.4; 16x16x64 -> 32x32x3: 10.6 against 65.7); where the input is no wider
than the output (s*s*I <= O: a discriminator's first layer), the taps' input slices are
concatenated into one matmul over all of them (28x28x1 -> 14x14x64: 2.8 ms against 17.9;
the colour feature network's stride-1 3x3 convs, I = O or I = O / 2: 5-15 % faster).
Elsewhere one matmul per tap wins (7x7x256 -> 14x14x128: 113 ms per tap, 157 all at once).

`operands="bfloat16"` rounds the matmuls' inputs and weights to bf16 and sums their
products in float32, on this CPU's AMX units 3-4x float32's matmul speed; every matmul of
a layer is then in a form XLA:CPU runs in bf16: the forward and the weight gradient
row-major (`_rows_dot`), the input gradient g @ w^T with w read in place. Per-tap layers
take all taps' gradients in one pair of dots (`_bf16_tap_products`,
`_bf16_shifted_products`). The seed 28x28 DCGAN's step: 1.33-1.36x float32's, before those.

The modules have flax's nn.ConvTranspose / nn.Conv parameters (names, shapes, init) and
outputs exactly (tests/test_matmul_conv.py checks both, with gradients and the second
derivatives gradient penalties take), so checkpoints and reference code move between
them. Their matmuls have a hand-written VJP (`_matmul`), so they take reverse-mode
derivatives of any order but not forward-mode ones (jax.jvp, jax.jacfwd).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import logging

from aigc_jax.errors import InvalidInputError


def same_transpose_padding(kernel: int, stride: int) -> tuple[int, int]:
  """The (low, high) padding of the dilated input that lax uses for a 'SAME' transpose."""
  total = kernel + stride - 2
  low = kernel - 1 if stride > kernel - 1 else math.ceil(total / 2)
  return low, total - low


OPERAND_DTYPES = ("auto", "float32", "bfloat16")
# /proc/cpuinfo flags of units that multiply bf16 with float32 sums at several times
# float32's matmul speed (XLA:CPU uses them through YNNPACK / oneDNN).
BF16_MATMUL_FLAGS = ("amx_bf16", "avx512_bf16")
# Narrower matmuls keep float32 operands even when bf16 ones are asked for: their bf16
# copies cost more than AMX saves (seed DCGAN, 2 cores: a generator's last layer, 128 -> 16
# products, took 1.3-2.7x its float32 forward + backward time in bf16, four A/B pairs).
BF16_MIN_WIDTH = 64


def lists_bf16_matmul_units(cpuinfo: str) -> bool:
  """Whether a /proc/cpuinfo text names AMX-BF16 or AVX512-BF16 among the CPU's flags."""
  return not set(BF16_MATMUL_FLAGS).isdisjoint(cpuinfo.split())


def _cpuinfo() -> str:
  try:
    with open("/proc/cpuinfo") as cpuinfo:
      return cpuinfo.read()
  except OSError:  # Not Linux: no flags to tell the units by.
    return ""


@functools.cache
def auto_operands() -> str:
  """What `operands="auto"` means here: 'bfloat16' where JAX computes on a CPU with bf16
  matmul units, else 'float32'.

  On such a CPU bf16 operands make the GAN steps 1.3-1.6x faster and train to the same FID
  (README, Speed); without the units a bf16 dot saves nothing and its operand copies cost.
  Accelerators keep float32 operands: XLA already picks their matmul precision (TF32 on
  recent GPUs, bf16 passes on TPUs).
  """
  fast = jax.default_backend() == "cpu" and lists_bf16_matmul_units(_cpuinfo())
  choice = "bfloat16" if fast else "float32"
  logging.info("Matmul operands 'auto' -> %s (%s).", choice,
               "CPU with bf16 matmul units" if fast else "no CPU bf16 matmul units in use")
  return choice


def operand_dtype(name: str) -> jnp.dtype:
  """The dtype a layer rounds its matmul operands to (products are summed in float32)."""
  if name not in OPERAND_DTYPES:
    raise InvalidInputError(f"Unknown matmul operand dtype {name!r}; choose from "
                            f"{OPERAND_DTYPES}.")
  return jnp.dtype(auto_operands() if name == "auto" else name)


def _rows_dot(a: jax.Array, b: jax.Array, dtype: jnp.dtype) -> jax.Array:
  """a (M, K) @ b (K, N), operands in `dtype` (bf16), float32 sums, as a row-major dot.

  XLA:CPU runs bf16 dots on AMX / AVX512-BF16 (~1,000-1,500 GFLOP/s here against ~350 in
  float32) with the first operand row-major; a transposed one (the weight gradient's x^T)
  turns the dot back into float32, or, when XLA folds the transpose in after that choice,
  fails ("Unsupported element type for DotThunk"). A zero appended to the contraction
  keeps each operand a separate row-major copy, at no cost beyond the copy it makes anyway.
  """
  a = jnp.pad(a.astype(dtype), ((0, 0), (0, 1)))
  b = jnp.pad(b.astype(dtype), ((0, 1), (0, 0)))
  return jnp.dot(a, b, preferred_element_type=jnp.float32)


# Elements of a bf16 weight gradient's input transposed at once (1 MiB in float32):
# XLA:CPU transposes a block that stays in cache ~3x faster than a long one, so x^T @ g
# runs as a sum over row blocks (a (12544, 256) x (12544, 128) product: 14.4 ms in one
# block, 4.6-5.7 ms in 8-16).
TRANSPOSE_BLOCK_ELEMENTS = 2 ** 18


def _blocked_weight_grad(x: jax.Array, grad: jax.Array, dtype: jnp.dtype) -> jax.Array:
  """x^T @ grad for x (R, I), grad (R, O) as row-major `dtype` dots over blocks of rows."""
  rows = x.shape[0]
  needed = -(-rows * x.shape[1] // TRANSPOSE_BLOCK_ELEMENTS)
  # Blocks that divide the rows where that costs at most twice the blocks; else zero rows
  # (which add nothing to the product) pad the last block.
  blocks = next((b for b in range(needed, 2 * needed + 1) if rows % b == 0), needed)
  padding = ((0, -rows % blocks), (0, 0))
  x = jnp.pad(x, padding).reshape(blocks, -1, x.shape[1])
  grad = jnp.pad(grad, padding).reshape(blocks, -1, grad.shape[1])
  return sum(_rows_dot(x[b].T, grad[b], dtype) for b in range(blocks))


def _matmul(x: jax.Array, weight: jax.Array, dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """(B, H, W, I) x (I, O) -> (B, H, W, O) as one 2-D matmul, operands rounded to `dtype`.

  Its gradients are written out (`_matmul_vjp`) because the ones autodiff derives let
  XLA:CPU transpose the output gradient for the weight gradient inside the fusion that
  computes it (BatchNorm's backward, LeakyReLU's): a strided loop that took 26 of the
  seed 28x28 DCGAN's 288 ms per step. Written as x^T @ g, the transpose lands on the
  layer's input and the step takes 256 ms. With bfloat16 operands all three products
  are bf16 dots with float32 sums, and the result and both gradients stay in the inputs'
  dtypes; below BF16_MIN_WIDTH input or output channels they stay float32. The input
  gradient g @ w^T contracts w's last axis in place: XLA:CPU's bf16 dot reads a
  transposed second operand, and copying w^T first cost the bf16 MLP GAN 18 % of its
  step (5.8 against 4.8 ms; a (256, 512) x (512, 784) product alone 0.61 against 0.36).
  """
  if min(weight.shape) < BF16_MIN_WIDTH:
    dtype = jnp.float32
  return _matmul_vjp(x, weight, jnp.dtype(dtype), x.dtype, weight.dtype)


def operand_dot_general(name: str):
  """A `dot_general` for nn.Dense whose (B, I) x (I, O) products take `name` operands.

  bfloat16 sends them through `_matmul` (row-major bf16 dots, float32 sums, the same
  width floor); any other contraction, and float32, is lax.dot_general's.
  """
  dtype = operand_dtype(name)
  if dtype == jnp.float32:
    return jax.lax.dot_general

  def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    if lhs.ndim != 2 or rhs.ndim != 2 or dimension_numbers != (((1,), (0,)), ((), ())):
      return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                                 preferred_element_type=preferred_element_type)
    return _matmul(lhs[:, None, None, :], rhs, dtype)[:, 0, 0, :]

  return dot_general


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _matmul_vjp(x, weight, dtype, x_dtype, weight_dtype):
  b, h, w, i = x.shape
  x = x.reshape(b * h * w, i)
  if dtype == jnp.float32:
    y = jnp.dot(x, weight)
  else:
    y = jnp.dot(x.astype(dtype), weight.astype(dtype), preferred_element_type=jnp.float32)
    y = y.astype(jnp.result_type(x_dtype, weight_dtype))
  return y.reshape(b, h, w, -1)


def _matmul_fwd(x, weight, dtype, x_dtype, weight_dtype):
  y = _matmul_vjp(x, weight, dtype, x_dtype, weight_dtype)
  if dtype == jnp.float32:
    return y, (x, weight)
  return y, (x.astype(dtype), weight.astype(dtype))  # bf16 residuals: half the memory.


def _matmul_bwd(dtype, x_dtype, weight_dtype, residuals, grad):
  x, weight = residuals
  shape, rows = x.shape, x.shape[0] * x.shape[1] * x.shape[2]
  x, grad = x.reshape(rows, -1), grad.reshape(rows, -1)
  if dtype == jnp.float32:
    x_grad, weight_grad = jnp.dot(grad, weight.T), jnp.dot(x.T, grad)
  else:
    x_grad = jax.lax.dot_general(grad.astype(dtype), weight,
                                 (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
    weight_grad = _blocked_weight_grad(x, grad, dtype)
  return x_grad.reshape(shape).astype(x_dtype), weight_grad.astype(weight_dtype)


_matmul_vjp.defvjp(_matmul_fwd, _matmul_bwd)


def all_taps_at_once(kernel_shape: tuple[int, ...]) -> bool:
  """Whether a transposed conv computes its taps' products as one matmul (module doc)."""
  kh, kw, i, o = kernel_shape
  return kh * kw * o <= i


def _tap_products(x: jax.Array, kernel: jax.Array, dtype: jnp.dtype
                  ) -> dict[tuple[int, int], jax.Array]:
  """(B, H, W, I) x (kh, kw, I, O) -> {(t_h, t_w): x @ kernel[t_h, t_w], (B, H, W, O)}.

  Narrow products come from one (I, kh*kw*O) matmul, the rest from one matmul per tap:
  wide products are then channel-contiguous, so the shifted sums below are cheap copies.
  With bf16 operands the per-tap products share one backward pass (`_bf16_tap_products`).
  """
  kh, kw, i, o = kernel.shape
  taps = [(th, tw) for th in range(kh) for tw in range(kw)]
  if all_taps_at_once(kernel.shape):
    products = _matmul(x, kernel.transpose(2, 0, 1, 3).reshape(i, kh * kw * o), dtype)
    products = products.reshape(*x.shape[:3], kh, kw, o)
    return {(th, tw): products[:, :, :, th, tw] for th, tw in taps}
  if dtype != jnp.float32 and min(i, o) >= BF16_MIN_WIDTH:
    return dict(zip(taps, _bf16_tap_products(x, kernel, jnp.dtype(dtype), x.dtype,
                                             kernel.dtype)))
  return {(th, tw): _matmul(x, kernel[th, tw], dtype) for th, tw in taps}


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _bf16_tap_products(x, kernel, dtype, x_dtype, kernel_dtype):
  """[x @ kernel[t_h, t_w] for every tap] in `dtype` with float32 sums, x (B, H, W, I).

  The backward pass takes all taps' gradients together: their output gradients side by
  side, (pixels, taps * O) in bf16, make one input-gradient dot (contraction taps * O
  instead of 16 dots whose float32 (pixels, I) results are then summed) and one weight
  gradient (x^T transposed once instead of per tap). The seed 28x28 generator's 7x7x256 ->
  14x14x128 layer, forward + backward at batch 128: 75 -> 59 ms (benchmarks/
  conv_layer_speed.py); the DCGAN step 1.05-1.11x.
  """
  xb, kernel_b = x.astype(dtype), kernel.astype(dtype)
  return [jnp.dot(xb, tap, preferred_element_type=jnp.float32).astype(x_dtype)
          for tap in kernel_b.reshape(-1, *kernel.shape[2:])]


def _bf16_tap_products_fwd(x, kernel, dtype, x_dtype, kernel_dtype):
  products = _bf16_tap_products(x, kernel, dtype, x_dtype, kernel_dtype)
  return products, (x.astype(dtype), kernel.astype(dtype))


def _bf16_tap_products_bwd(dtype, x_dtype, kernel_dtype, residuals, grads):
  x, kernel = residuals
  kh, kw, i, o = kernel.shape
  shape, rows = x.shape, x.shape[0] * x.shape[1] * x.shape[2]
  grad = jnp.concatenate([g.astype(dtype).reshape(rows, o) for g in grads], axis=-1)
  kernel = kernel.transpose(2, 0, 1, 3).reshape(i, kh * kw * o)  # Taps side by side.
  x_grad = jax.lax.dot_general(grad, kernel, (((1,), (1,)), ((), ())),
                               preferred_element_type=jnp.float32)
  weight_grad = _blocked_weight_grad(x.reshape(rows, i), grad, dtype)
  weight_grad = weight_grad.reshape(i, kh, kw, o).transpose(1, 2, 0, 3)
  return x_grad.reshape(shape).astype(x_dtype), weight_grad.astype(kernel_dtype)


_bf16_tap_products.defvjp(_bf16_tap_products_fwd, _bf16_tap_products_bwd)


def _sum_shifted(products, pairs_h, pairs_w, out_h: int, out_w: int) -> jax.Array:
  """sum over tap pairs of products[t_h, t_w][:, m + off_h, n + off_w], zero outside.

  pairs_*: [(tap, input offset), ...]; result (B, out_h, out_w, O).
  """
  _, h, w, _ = next(iter(products.values())).shape
  lo_h = max(0, -min(o for _, o in pairs_h))
  lo_w = max(0, -min(o for _, o in pairs_w))
  hi_h = max(0, out_h + max(o for _, o in pairs_h) - h)
  hi_w = max(0, out_w + max(o for _, o in pairs_w) - w)
  pad = ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0))
  return sum(jnp.pad(products[th, tw], pad)[:, lo_h + oh:lo_h + oh + out_h,
                                             lo_w + ow:lo_w + ow + out_w]
             for th, oh in pairs_h for tw, ow in pairs_w)


def _phase_pairs(kernel: int, stride: int, pad_low: int, phase: int) -> list[tuple[int, int]]:
  return [(t, (phase + t - pad_low) // stride) for t in range(kernel)
          if (phase + t - pad_low) % stride == 0]


def conv_transpose_same(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                        dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """lax.conv_transpose(x, kernel, strides, 'SAME') for NHWC / HWIO operands, the
  matmuls' operands rounded to `dtype`."""
  (sh, sw), (kh, kw) = strides, kernel.shape[:2]
  b, h, w, _ = x.shape
  products = _tap_products(x, kernel, dtype)
  pad_h, pad_w = same_transpose_padding(kh, sh)[0], same_transpose_padding(kw, sw)[0]
  rows = []
  for a in range(sh):
    pairs_h = _phase_pairs(kh, sh, pad_h, a)
    row = []
    for c in range(sw):
      pairs_w = _phase_pairs(kw, sw, pad_w, c)
      row.append(_sum_shifted(products, pairs_h, pairs_w, h, w) if pairs_h and pairs_w
                 else jnp.zeros((b, h, w, kernel.shape[-1]), x.dtype))
    rows.append(jnp.stack(row, axis=3))  # (B, H, W, sw, O)
  return jnp.stack(rows, axis=2).reshape((b, h * sh, w * sw, kernel.shape[-1]))


def concatenated_taps(kernel_shape: tuple[int, ...]) -> bool:
  """Whether a (space-to-depth) conv concatenates its taps' inputs into one matmul."""
  *_, i, o = kernel_shape
  return i <= o


def conv_same(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
              dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """lax.conv_general_dilated(x, kernel, strides, 'SAME') for NHWC / HWIO operands, the
  matmuls' operands rounded to `dtype`."""
  (sh, sw), (kh, kw, i, o) = strides, kernel.shape
  b, h, w, _ = x.shape
  out_h, out_w = -(-h // sh), -(-w // sw)
  th, tw = -(-kh // sh), -(-kw // sw)  # Taps per side after space-to-depth.
  low_h = max((out_h - 1) * sh + kh - h, 0) // 2
  low_w = max((out_w - 1) * sw + kw - w, 0) // 2
  rows, cols = (out_h - 1 + th) * sh, (out_w - 1 + tw) * sw  # Padded extent, stride multiple.
  x = jnp.pad(x, ((0, 0), (low_h, rows - h - low_h), (low_w, cols - w - low_w), (0, 0)))
  x = x.reshape(b, rows // sh, sh, cols // sw, sw, i).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(b, rows // sh, cols // sw, sh * sw * i)  # Space-to-depth, (ph, pw, c) order.
  kernel = jnp.pad(kernel, ((0, th * sh - kh), (0, tw * sw - kw), (0, 0), (0, 0)))
  kernel = kernel.reshape(th, sh, tw, sw, i, o).transpose(0, 2, 1, 3, 4, 5)
  kernel = kernel.reshape(th, tw, sh * sw * i, o)
  offsets = [(ph, pw) for ph in range(th) for pw in range(tw)]
  taps = kernel.reshape(th * tw, sh * sw * i, o)
  if (dtype != jnp.float32 and not concatenated_taps(kernel.shape)
      and min(taps.shape[1:]) >= BF16_MIN_WIDTH):
    return _bf16_shifted_products(x, taps, jnp.dtype(dtype), tuple(offsets), (out_h, out_w),
                                  x.dtype, taps.dtype)
  # Taps read the input at non-negative offsets, so (in float32) slice the input rather
  # than the products: no work is spent on outputs that would be cut off.
  windows = [x[:, ph:ph + out_h, pw:pw + out_w] for ph, pw in offsets]
  if concatenated_taps(kernel.shape):
    return _matmul(jnp.concatenate(windows, axis=-1), kernel.reshape(-1, o), dtype)
  return sum(_matmul(window, tap, dtype) for window, tap in zip(windows, taps))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _bf16_shifted_products(x, taps, dtype, offsets, out_shape, x_dtype, taps_dtype):
  """sum over taps t of x[:, a_t:a_t + out_h, b_t:b_t + out_w] @ taps[t], x (B, R, C, I),
  taps (T, I, O), operands in `dtype` with float32 sums.

  One matmul multiplies every input pixel by all taps, (B*R*C, I) x (I, T*O), and the
  output sums shifted slices of it; the backward pass places the output gradient at each
  tap's offset, side by side, and takes one input-gradient and one weight-gradient dot
  from that. The per-tap form copies T windows of x (bf16) and transposes each for its
  weight gradient; this one reads x as it is and transposes it once, for (R*C)/(out_h *
  out_w) the FLOPs (64/49 for D's 14x14 -> 7x7 layer). It runs over chunks of the batch
  whose products stay in cache (PRODUCT_CHUNK_ELEMENTS).
  """
  (_, rows, cols, i), (t, _, o), (out_h, out_w) = x.shape, taps.shape, out_shape
  taps = taps.astype(dtype).transpose(1, 0, 2).reshape(i, t * o)

  def chunk(x):
    products = jnp.dot(x.astype(dtype).reshape(-1, i), taps,
                       preferred_element_type=jnp.float32).reshape(-1, rows, cols, t, o)
    return sum(products[:, a:a + out_h, c:c + out_w, k] for k, (a, c) in enumerate(offsets))

  return jnp.concatenate([chunk(part) for part in _batch_chunks(x, rows * cols * t * o)]
                         ).astype(x_dtype)


# Elements of `_bf16_shifted_products`' all-tap products (float32) computed at once: D's
# 14x14x64 -> 7x7x128 layer at batch 256 took 49 ms forward + backward in one chunk, 38.5
# in chunks of 2^21 (64 examples), 43 in chunks of 2^22; the per-tap form 52-55.
PRODUCT_CHUNK_ELEMENTS = 2 ** 21


def _batch_chunks(x: jax.Array, elements_per_example: int) -> list[jax.Array]:
  """x split along the batch into the fewest equal parts of <= PRODUCT_CHUNK_ELEMENTS."""
  b = x.shape[0]
  needed = -(-b * elements_per_example // PRODUCT_CHUNK_ELEMENTS)
  chunks = next((c for c in range(needed, b + 1) if b % c == 0), b)
  return jnp.split(x, chunks)


def _bf16_shifted_products_fwd(x, taps, dtype, offsets, out_shape, x_dtype, taps_dtype):
  y = _bf16_shifted_products(x, taps, dtype, offsets, out_shape, x_dtype, taps_dtype)
  return y, (x.astype(dtype), taps.astype(dtype))


def _bf16_shifted_products_bwd(dtype, offsets, out_shape, x_dtype, taps_dtype, residuals,
                               grad):
  x, taps = residuals
  (_, rows, cols, i), (t, _, o), (out_h, out_w) = x.shape, taps.shape, out_shape
  taps = taps.transpose(1, 0, 2).reshape(i, t * o)
  x_grads, taps_grad = [], 0
  for x_part, grad_part in zip(_batch_chunks(x, rows * cols * t * o),
                               _batch_chunks(grad.astype(dtype), rows * cols * t * o)):
    placed = jnp.stack([jnp.pad(grad_part, ((0, 0), (a, rows - out_h - a),
                                            (c, cols - out_w - c), (0, 0)))
                        for a, c in offsets], axis=3)
    placed = placed.reshape(-1, t * o)  # (B*R*C, T*O): each tap's output gradient in place.
    x_grads.append(jax.lax.dot_general(placed, taps, (((1,), (1,)), ((), ())),
                                       preferred_element_type=jnp.float32))
    taps_grad = taps_grad + _blocked_weight_grad(x_part.reshape(-1, i), placed, dtype)
  x_grad = jnp.concatenate(x_grads)
  return (x_grad.reshape(x.shape).astype(x_dtype),
          taps_grad.reshape(i, t, o).transpose(1, 0, 2).astype(taps_dtype))


_bf16_shifted_products.defvjp(_bf16_shifted_products_fwd, _bf16_shifted_products_bwd)


class MatmulConv(nn.Module):
  """Drop-in for `nn.Conv(features, kernel_size, strides, padding='SAME')`."""

  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  # "bfloat16": the matmuls read bf16-rounded inputs and weights and sum their products in
  # float32 (AMX / AVX512-BF16 CPUs, TPUs' default); outputs and gradients keep x's dtype.
  # "auto": bfloat16 on a CPU with bf16 matmul units, else float32 (`auto_operands`).
  operands: str = "float32"

  def convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    return conv_same(x, kernel, tuple(self.strides), operand_dtype(self.operands))

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features))
    y = self.convolve(x, kernel)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return y


class MatmulConvTranspose(MatmulConv):
  """Drop-in for `nn.ConvTranspose(features, kernel_size, strides, padding='SAME')`."""

  strides: tuple[int, int] = (2, 2)

  def convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    return conv_transpose_same(x, kernel, tuple(self.strides), operand_dtype(self.operands))
