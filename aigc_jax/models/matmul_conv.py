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
row-major (`_rows_dot`), the input gradient g @ w^T with w read in place (`_nt_dot`). Wide
strided and transposed convs multiply every input pixel by all taps in one matmul and take
all taps' gradients in one pair of dots (`_bf16_shifted_products`). The seed 28x28
DCGAN's step: 1.33-1.36x float32's before those forms.

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


def _nt_dot(a: jax.Array, b: jax.Array) -> jax.Array:
  """a (M, K) @ b (N, K)^T with float32 sums, b read in place.

  XLA:CPU's bf16 dot takes a transposed second operand (not a transposed first one), so
  input gradients g @ w^T need no copy of w^T: for the bf16 MLP GAN a (256, 512) x (512,
  784)^T product took 0.36 ms this way against 0.61 with w^T copied first.
  """
  return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())),
                             preferred_element_type=jnp.float32)


def _side_by_side(taps: jax.Array) -> jax.Array:
  """Kernel taps (..., I, O) as one (I, taps * O) matrix: every tap's product in one dot."""
  i, o = taps.shape[-2:]
  return taps.reshape(-1, i, o).transpose(1, 0, 2).reshape(i, -1)


def _from_side_by_side(matrix: jax.Array, taps: int) -> jax.Array:
  """The inverse of `_side_by_side`, to (taps, I, O)."""
  i = matrix.shape[0]
  return matrix.reshape(i, taps, -1).transpose(1, 0, 2)


def _equal_parts(total: int, fewest: int, most: int) -> int | None:
  """The fewest parts from `fewest` to `most` that divide `total` evenly, if any."""
  return next((parts for parts in range(fewest, most + 1) if total % parts == 0), None)


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
  blocks = _equal_parts(rows, needed, 2 * needed) or needed
  padding = ((0, -rows % blocks), (0, 0))
  x = jnp.pad(x, padding).reshape(blocks, -1, x.shape[1])
  grad = jnp.pad(grad, padding).reshape(blocks, -1, grad.shape[1])
  return sum(_rows_dot(x[b].T, grad[b], dtype) for b in range(blocks))


def _matmul(x: jax.Array, weight: jax.Array, dtype: jnp.dtype = jnp.float32,
            out_in: bool = False) -> jax.Array:
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

  `out_in`: the weight is stored (O, I) (dense.Dense's narrowing layers) and every product
  reads it as stored. Handing such a weight over transposed instead made XLA:CPU run the
  forward and input-gradient products in float32 on the rounded values, and transpose
  the weight gradient back.
  """
  if min(weight.shape) < BF16_MIN_WIDTH:
    dtype = jnp.float32
  return _matmul_vjp(x, weight, jnp.dtype(dtype), x.dtype, weight.dtype, out_in)


def weight_dims(out_in: bool):
  """dot_general dimension numbers of rows (N, I) x a weight stored (O, I) or (I, O)."""
  return (((1,), (1 if out_in else 0,)), ((), ()))


def operand_dot_general(name: str):
  """A `dot_general` for nn.Dense whose (B, I) x (I, O) products take `name` operands.

  bfloat16 sends them, and (B, I) x (O, I) products contracting the weight's last axis,
  through `_matmul` (row-major bf16 dots, float32 sums, the same width floor); any other
  contraction, and float32, is lax.dot_general's.
  """
  dtype = operand_dtype(name)
  if dtype == jnp.float32:
    return jax.lax.dot_general

  def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    out_in = {weight_dims(False): False, weight_dims(True): True}.get(dimension_numbers)
    if lhs.ndim != 2 or rhs.ndim != 2 or out_in is None:
      return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                                 preferred_element_type=preferred_element_type)
    return _matmul(lhs[:, None, None, :], rhs, dtype, out_in)[:, 0, 0, :]

  return dot_general


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _matmul_vjp(x, weight, dtype, x_dtype, weight_dtype, out_in):
  b, h, w, i = x.shape
  x = x.reshape(b * h * w, i)
  if dtype == jnp.float32:
    y = jax.lax.dot_general(x, weight, weight_dims(out_in))
  else:
    y = jax.lax.dot_general(x.astype(dtype), weight.astype(dtype), weight_dims(out_in),
                            preferred_element_type=jnp.float32)
    y = y.astype(jnp.result_type(x_dtype, weight_dtype))
  return y.reshape(b, h, w, -1)


def _matmul_fwd(x, weight, dtype, x_dtype, weight_dtype, out_in):
  y = _matmul_vjp(x, weight, dtype, x_dtype, weight_dtype, out_in)
  if dtype == jnp.float32:
    return y, (x, weight)
  return y, (x.astype(dtype), weight.astype(dtype))  # bf16 residuals: half the memory.


def _matmul_bwd(dtype, x_dtype, weight_dtype, out_in, residuals, grad):
  x, weight = residuals
  shape, rows = x.shape, x.shape[0] * x.shape[1] * x.shape[2]
  x, grad = x.reshape(rows, -1), grad.reshape(rows, -1)
  if dtype == jnp.float32:
    x_grad = jnp.dot(grad, weight if out_in else weight.T)
    weight_grad = jnp.dot(grad.T, x) if out_in else jnp.dot(x.T, grad)
  elif out_in:
    x_grad = jnp.dot(grad.astype(dtype), weight, preferred_element_type=jnp.float32)
    weight_grad = _blocked_weight_grad(grad, x, dtype)
  else:
    x_grad = _nt_dot(grad.astype(dtype), weight)
    weight_grad = _blocked_weight_grad(x, grad, dtype)
  return x_grad.reshape(shape).astype(x_dtype), weight_grad.astype(weight_dtype)


_matmul_vjp.defvjp(_matmul_fwd, _matmul_bwd)


def all_taps_at_once(kernel_shape: tuple[int, ...]) -> bool:
  """Whether a transposed conv computes its taps' products as one matmul (module doc)."""
  kh, kw, i, o = kernel_shape
  return kh * kw * o <= i


def _tap_products(x: jax.Array, kernel: jax.Array, dtype: jnp.dtype) -> list[jax.Array]:
  """(B, H, W, I) x (kh, kw, I, O) -> [x @ kernel[t_h, t_w], (B, H, W, O)], taps row-major.

  Narrow products come from one (I, kh*kw*O) matmul, the rest from one matmul per tap:
  wide products are then channel-contiguous, so the shifted sums below are cheap copies.
  """
  kh, kw, _, o = kernel.shape
  if all_taps_at_once(kernel.shape):
    products = _matmul(x, _side_by_side(kernel), dtype).reshape(*x.shape[:3], kh * kw, o)
    return [products[:, :, :, t] for t in range(kh * kw)]
  return [_matmul(x, kernel[th, tw], dtype) for th in range(kh) for tw in range(kw)]


def _phase_pairs(kernel: int, stride: int, pad_low: int, phase: int) -> list[tuple[int, int]]:
  return [(t, (phase + t - pad_low) // stride) for t in range(kernel)
          if (phase + t - pad_low) % stride == 0]


def conv_transpose_same(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                        dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """lax.conv_transpose(x, kernel, strides, 'SAME') for NHWC / HWIO operands, the
  matmuls' operands rounded to `dtype`."""
  (sh, sw), (kh, kw, i, o) = strides, kernel.shape
  b, h, w, _ = x.shape
  pad_h, pad_w = same_transpose_padding(kh, sh)[0], same_transpose_padding(kw, sw)[0]
  phases = tuple(tuple((th * kw + tw, oh, ow) for th, oh in _phase_pairs(kh, sh, pad_h, a)
                       for tw, ow in _phase_pairs(kw, sw, pad_w, c))
                 for a in range(sh) for c in range(sw))
  if (dtype != jnp.float32 and not all_taps_at_once(kernel.shape)
      and min(i, o) >= BF16_MIN_WIDTH and all(phases)):
    y = _bf16_shifted_products(x, kernel.reshape(kh * kw, i, o), jnp.dtype(dtype), phases,
                               (h, w), x.dtype, kernel.dtype)  # (B, H, W, sh * sw, O)
  else:
    products = _tap_products(x, kernel, dtype)
    # Each phase sums its taps' products read at their offsets; a phase no tap reaches is 0.
    y = jnp.stack([sum((_shifted(products[t], oh, ow, (h, w)) for t, oh, ow in phase),
                       jnp.zeros((b, h, w, o), x.dtype)) for phase in phases], axis=3)
  y = y.reshape(b, h, w, sh, sw, o).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, h * sh, w * sw, o)


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
    terms = (tuple((k, a, c) for k, (a, c) in enumerate(offsets)),)  # One output, all taps.
    return _bf16_shifted_products(x, taps, jnp.dtype(dtype), terms, (out_h, out_w), x.dtype,
                                  taps.dtype)[:, :, :, 0]
  # Taps read the input at non-negative offsets, so (in float32) slice the input rather
  # than the products: no work is spent on outputs that would be cut off.
  windows = [x[:, ph:ph + out_h, pw:pw + out_w] for ph, pw in offsets]
  if concatenated_taps(kernel.shape):
    return _matmul(jnp.concatenate(windows, axis=-1), kernel.reshape(-1, o), dtype)
  return sum(_matmul(window, tap, dtype) for window, tap in zip(windows, taps))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _bf16_shifted_products(x, taps, dtype, outputs, out_shape, x_dtype, taps_dtype):
  """Sums of taps' products read at shifted places, operands in `dtype`, float32 sums.

  x (B, R, C, I), taps (T, I, O); outputs[k] lists (tap t, row offset a, column offset c):
  output k at (m, n) sums (x @ taps[t])[m + a, n + c], zero outside x. The result is (B,
  out_h, out_w, K, O). A strided conv after space-to-depth is one output over all taps; a
  transposed conv is one output per phase (stride^2), each over the taps that reach it.

  One matmul multiplies every input pixel by all taps, (B*R*C, I) x (I, T*O), and the
  outputs sum shifted slices of it; the backward pass places each output's gradient where
  its taps' products were read, all taps side by side, and takes one input-gradient and one
  weight-gradient dot from that. Per-tap matmuls instead copy a window per tap (a strided
  conv; D's 14x14x64 -> 7x7x128 layer at batch 256: 52-55 ms forward + backward against
  38.5 this way, for 64/49 the FLOPs since every input pixel meets every tap) or take each
  tap's gradient as a float32 slice, then convert and concatenate them (a transposed conv;
  the seed DCGAN's step 781-811 -> 898-916 images/s with the generator's 7x7x256 ->
  14x14x128 layer this way, two rounds alternated under README's opt-in malloc settings).
  It runs over chunks of the batch whose products stay in cache (PRODUCT_CHUNK_ELEMENTS).
  """
  (_, rows, cols, i), (t, _, o) = x.shape, taps.shape
  if sorted(k for terms in outputs for k, _, _ in terms) != list(range(t)):
    raise ValueError(f"Every one of the {t} taps must be read by exactly one output term.")
  taps = _side_by_side(taps.astype(dtype))

  def chunk(x):
    products = jnp.dot(x.reshape(-1, i), taps,
                       preferred_element_type=jnp.float32).reshape(-1, rows, cols, t, o)
    return jnp.stack([sum(_shifted(products[:, :, :, k], a, c, out_shape) for k, a, c in terms)
                      for terms in outputs], axis=3)

  # One bf16 copy of x, the one the backward pass keeps, rather than one more per chunk.
  chunks = _batch_chunks(x.astype(dtype), rows * cols * t * o)
  return jnp.concatenate([chunk(part) for part in chunks]).astype(x_dtype)


def _shifted(products: jax.Array, a: int, c: int, out_shape: tuple[int, int]) -> jax.Array:
  """products[:, m + a, n + c] for the out_shape positions (m, n), zero outside."""
  (_, rows, cols, _), (out_h, out_w) = products.shape, out_shape
  return jax.lax.pad(products, jnp.zeros((), products.dtype),
                     ((0, 0, 0), (-a, out_h + a - rows, 0), (-c, out_w + c - cols, 0),
                      (0, 0, 0)))


def _placed(grad: jax.Array, a: int, c: int, in_shape: tuple[int, int]) -> jax.Array:
  """The transpose of `_shifted`: grad (B, out_h, out_w, O) put back at offset (a, c)."""
  (_, out_h, out_w, _), (rows, cols) = grad.shape, in_shape
  return jax.lax.pad(grad, jnp.zeros((), grad.dtype),
                     ((0, 0, 0), (a, rows - out_h - a, 0), (c, cols - out_w - c, 0), (0, 0, 0)))


# Elements of `_bf16_shifted_products`' all-tap products (float32) computed at once: D's
# 14x14x64 -> 7x7x128 layer at batch 256 took 49 ms forward + backward in one chunk, 38.5
# in chunks of 2^21 (64 examples), 43 in chunks of 2^22; the per-tap form 52-55.
PRODUCT_CHUNK_ELEMENTS = 2 ** 21


def _batch_chunks(x: jax.Array, elements_per_example: int) -> list[jax.Array]:
  """x split along the batch into the fewest equal parts of <= PRODUCT_CHUNK_ELEMENTS."""
  b = x.shape[0]
  return jnp.split(x, _equal_parts(b, -(-b * elements_per_example // PRODUCT_CHUNK_ELEMENTS),
                                   b))


def _bf16_shifted_products_fwd(x, taps, dtype, outputs, out_shape, x_dtype, taps_dtype):
  y = _bf16_shifted_products(x, taps, dtype, outputs, out_shape, x_dtype, taps_dtype)
  return y, (x.astype(dtype), taps.astype(dtype))


def _bf16_shifted_products_bwd(dtype, outputs, out_shape, x_dtype, taps_dtype, residuals,
                               grad):
  x, taps = residuals
  (_, rows, cols, i), (t, _, o) = x.shape, taps.shape
  reads = {k: (out, a, c) for out, terms in enumerate(outputs) for k, a, c in terms}
  taps, x_grads, taps_grad = _side_by_side(taps), [], 0
  for x_part, grad_part in zip(_batch_chunks(x, rows * cols * t * o),
                               _batch_chunks(grad.astype(dtype), rows * cols * t * o)):
    placed = jnp.stack([_placed(grad_part[:, :, :, reads[k][0]], *reads[k][1:], (rows, cols))
                        for k in range(t)], axis=3)
    placed = placed.reshape(-1, t * o)  # (B*R*C, T*O): each tap's output gradient in place.
    x_grads.append(_nt_dot(placed, taps))
    taps_grad = taps_grad + _blocked_weight_grad(x_part.reshape(-1, i), placed, dtype)
  return (jnp.concatenate(x_grads).reshape(x.shape).astype(x_dtype),
          _from_side_by_side(taps_grad, t).astype(taps_dtype))


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
