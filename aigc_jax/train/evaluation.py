"""Held-out evaluation over a whole split: every example counted once, sums kept on device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from aigc_jax.data.sources import ImageData, ImageSpec
from aigc_jax.data.text import TextData, TextSpec
from aigc_jax.train import sharding
from aigc_jax.train.family import Family
from aigc_jax.train.replicated import fetch


def make_split_evaluator(family: Family, config: ml_collections.ConfigDict,
                         spec: ImageSpec | TextSpec, data: ImageData | TextData, mesh: Mesh,
                         rng: jax.Array
                         ) -> Callable[[Any], dict[str, float]]:
  """Returns evaluate(state) -> {"eval/<metric>": per-example mean over the split}.

  Batch i of the split always uses key fold_in(rng, i), so a fixed state evaluates to the
  same numbers every time (e.g. the same test-set binarisation and posterior samples).
  """
  repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  # The state keeps the sharding it comes with (replicated, or split by --config.fsdp).
  eval_step = jax.jit(family.make_eval_step(config, spec),
                      in_shardings=(None, batch_sharding, repl), out_shardings=repl)
  batch_size = config.eval_batch_size
  sharding.check_batch_divisible(batch_size, mesh)

  def evaluate(state) -> dict[str, float]:
    sums = None
    for i, batch in enumerate(data.eval_batches(global_batch=batch_size,
                                                process_index=jax.process_index(),
                                                process_count=jax.process_count())):
      out = eval_step(state, sharding.to_global(batch, batch_sharding),
                      jax.random.fold_in(rng, i))
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    totals = fetch(sums)
    count = totals.pop("count")
    return {f"eval/{name}": float(total / count) for name, total in totals.items()}

  return evaluate
