"""BatchNorm that takes its training statistics per group of a batch's examples.

Why: the GAN step runs D on real and fake images as one batch of 2B, so each layer is one
matmul over both. Run as a `vmap` over a (real, fake) pair axis instead, the weight
gradients become batched matmuls plus a sum, which XLA:CPU runs slowly (with the MLP GAN's
bf16 operands, one such gradient took 4.0 of the step's 16 ms). The DCGAN recipe still
normalises the real and the fake batch each by its own statistics; `groups=2` keeps that:
the batch is split into `groups` equal consecutive parts, each normalised by its own mean
and variance, and the running statistics move by the mean of the groups' statistics --
what averaging the updates of a vmapped nn.BatchNorm gave. With groups=1 it is
nn.BatchNorm (use_fast_variance), with the same parameter and statistic names, so
checkpoints are interchangeable.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from aigc_jax.errors import InvalidInputError


class GroupedBatchNorm(nn.Module):
  """(B, ..., C) -> same shape; statistics over each of `groups` consecutive B/groups rows."""

  momentum: float = 0.99  # Share of the running statistics kept at each training-mode call.
  epsilon: float = 1e-5
  axis_name: str | None = None  # pmap axis over which the statistics are averaged.

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = True, groups: int = 1) -> jnp.ndarray:
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    if x.shape[0] % groups:
      raise InvalidInputError(f"GroupedBatchNorm: a batch of {x.shape[0]} does not split into "
                              f"{groups} equal groups.")
    grouped = x.reshape((groups, -1, features)).astype(jnp.promote_types(x.dtype, jnp.float32))
    if train:
      moments = jnp.stack([grouped.mean(1), jnp.square(grouped).mean(1)])  # (2, groups, C)
      if self.axis_name is not None:
        moments = jax.lax.pmean(moments, self.axis_name)
      mean, mean_sq = moments
      var = jnp.maximum(0.0, mean_sq - jnp.square(mean))  # Rounding can make it negative.
      if not self.is_initializing():
        keep = self.momentum
        running_mean.value = keep * running_mean.value + (1 - keep) * mean.mean(0)
        running_var.value = keep * running_var.value + (1 - keep) * var.mean(0)
    else:
      mean, var = running_mean.value[None], running_var.value[None]
    # y = x * a + b with per-group (a, b), as PyTorch's CPU kernel does: one multiply-add
    # per element, and the backward pass reduces dy and dy * x per group.
    multiplier = jax.lax.rsqrt(var + self.epsilon) * scale  # (groups, C)
    offset = bias - mean * multiplier
    y = grouped * multiplier[:, None] + offset[:, None]
    return y.reshape(x.shape).astype(jnp.result_type(x, scale))
