"""Evaluation over a whole held-out split: every example counted once, on any topology.

One walk over the split serves every evaluation in the project: the loop's held-out
metrics, the VAE report (-ELBO, IWAE, reconstructions) and per-example scores such as the
VAE's outlier score. Batch i of the split always uses key fold_in(rng, i), so a fixed
state evaluates to the same numbers every time (e.g. the same test-set binarisation and
posterior samples), whatever the batch is split over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from aigc_jax.data.images import ImageData
from aigc_jax.data.text import TextData
from aigc_jax.train import sharding

# fn(state, batch, rng) -> a pytree of arrays: masked sums with a "count" entry
# (make_split_evaluator), or per-example values of shape (B, ...) (per_example_values).
BatchFn = Callable[[Any, dict[str, jax.Array], jax.Array], Any]


def _global_batches(data: ImageData | TextData, batch_size: int, mesh: Mesh
                    ) -> Iterator[dict[str, jax.Array]]:
  """The split in order as padded, masked global batches, split over the mesh."""
  sharding.check_batch_divisible(batch_size, mesh)
  batch_sharding = sharding.batch_sharded(mesh)
  for batch in data.eval_batches(global_batch=batch_size, process_index=jax.process_index(),
                                 process_count=jax.process_count()):
    yield sharding.to_global(batch, batch_sharding)


def _compile(fn: BatchFn, mesh: Mesh) -> BatchFn:
  # The state keeps the sharding it comes with (replicated, or split by --config.fsdp);
  # results come back replicated, so every process can read them.
  repl = sharding.replicated(mesh)
  return jax.jit(fn, in_shardings=(None, sharding.batch_sharded(mesh), repl),
                 out_shardings=repl)


def make_split_evaluator(eval_step: BatchFn, data: ImageData | TextData, *, batch_size: int,
                         mesh: Mesh, rng: jax.Array) -> Callable[[Any], dict[str, float]]:
  """Returns evaluate(state) -> {metric: per-example mean over the split}.

  `eval_step` returns sums over `batch["mask"]` and the masked "count"; the sums stay on
  device until the split is done, and the means are taken in float64.
  """
  step = _compile(eval_step, mesh)

  def evaluate(state) -> dict[str, float]:
    sums = None
    for i, batch in enumerate(_global_batches(data, batch_size, mesh)):
      out = step(state, batch, jax.random.fold_in(rng, i))
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    totals = sharding.fetch(sums)
    count = float(totals.pop("count"))
    return {name: float(total) / count for name, total in totals.items()}

  return evaluate


def per_example_values(fn: BatchFn, state: Any, data: ImageData, *, batch_size: int,
                       mesh: Mesh, rng: jax.Array) -> Any:
  """fn's per-example outputs over a whole image split, in split order, padding dropped."""
  step = _compile(fn, mesh)
  outs = [sharding.fetch(step(state, batch, jax.random.fold_in(rng, i)))
          for i, batch in enumerate(_global_batches(data, batch_size, mesh))]
  return jax.tree.map(lambda *parts: np.concatenate(parts)[:len(data.images)], *outs)
