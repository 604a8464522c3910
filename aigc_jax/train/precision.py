"""Mixed precision: compute in bfloat16, keep float32 master weights.

`--config.compute_dtype=bfloat16` runs a model's matmuls and convolutions in bf16 (what
accelerators do fastest) while parameters, optimiser state, BatchNorm statistics and
losses stay float32: the forward pass sees a bf16 copy of the float32 parameters, and
gradients flow back through that cast into float32. On CPUs bf16 is emulated and slower;
it is for GPUs and TPUs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from aigc_jax.errors import InvalidInputError

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config: ml_collections.ConfigDict) -> jnp.dtype:
  name = config.compute_dtype
  if name not in COMPUTE_DTYPES:
    raise InvalidInputError(f"--config.compute_dtype={name!r} is not one of "
                            f"{sorted(COMPUTE_DTYPES)}.")
  return COMPUTE_DTYPES[name]


def cast_floats(tree: Any, dtype: jnp.dtype) -> Any:
  """Floating-point arrays of `tree` in `dtype`; integers (labels, tokens) untouched."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x,
      tree)


@dataclasses.dataclass(frozen=True)
class MixedPrecision:
  """A Flax module whose `apply` computes in `dtype` and answers in float32.

  Only the `params` collection and the float inputs are cast; mutable collections such
  as BatchNorm statistics stay float32, and so do the outputs (and hence the losses).
  `init` is the module's own, so parameters are created in float32.
  """

  module: nn.Module
  dtype: jnp.dtype

  def init(self, *args, **kwargs):
    return self.module.init(*args, **kwargs)

  def apply(self, variables: dict, *args, **kwargs):
    variables = {**variables, "params": cast_floats(variables["params"], self.dtype)}
    out = self.module.apply(variables, *cast_floats(args, self.dtype), **kwargs)
    return cast_floats(out, jnp.float32)


def with_compute_dtype(module: nn.Module, config: ml_collections.ConfigDict
                       ) -> nn.Module | MixedPrecision:
  dtype = compute_dtype(config)
  return module if dtype == jnp.float32 else MixedPrecision(module, dtype)
