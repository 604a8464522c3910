"""Rebuilds a trained model from its workdir alone, for sampling and evaluation."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from aigc_jax.data.image_grid import to_unit_range
from aigc_jax.data.sources import DataSpec
from aigc_jax.train import sharding
from aigc_jax.train.checkpoint import Checkpointer, abstract_like
from aigc_jax.train.family import Family, get_family
from aigc_jax.train.replicated import fetch
from aigc_jax.train.rng import stream


@dataclasses.dataclass
class RestoredRun:
  config: ml_collections.ConfigDict
  spec: DataSpec
  family: Family
  state: Any
  step: int


def restore_run(workdir: str, step: int | None = None) -> RestoredRun:
  """Loads the config saved with the checkpoint, then the state, replicated on all devices."""
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    step = checkpointer.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint under {checkpointer.directory}; train first "
                              "with python -m experiments.train --workdir=" + workdir)
    meta = checkpointer.restore_meta(step)
    config = ml_collections.ConfigDict(meta["config"])
    spec = DataSpec.from_json(meta["data_spec"])
    family = get_family(config.family)
    repl = sharding.replicated(sharding.make_mesh())
    init_rng = stream(jax.random.key(config.seed), "init")
    abstract = abstract_like(lambda rng: family.create_state(config, rng, spec), init_rng,
                             sharding=repl)
    state = checkpointer.restore_state(step, abstract)
  finally:
    checkpointer.close()
  return RestoredRun(config=config, spec=spec, family=family, state=state, step=step)


def generate_images(run: RestoredRun, num_samples: int, seed: int = 0,
                    batch_size: int = 500, labels: np.ndarray | None = None) -> np.ndarray:
  """float32 samples in [0, 1], (num_samples, H, W, C), drawn in fixed-size jitted batches.

  Every batch has the same size (the last is trimmed afterwards), so the sampler compiles
  once; batch i uses key fold_in(seed_key, i), so a sample does not depend on num_samples.
  `labels` (num_samples,) asks a conditional model for those classes.
  """
  sample = jax.jit(run.family.make_sampler(run.config, run.spec), static_argnums=2)
  key = jax.random.key(seed)
  num_batches = -(-num_samples // batch_size)
  if labels is not None:
    labels = np.resize(np.asarray(labels, np.int32), num_batches * batch_size)
  batches = [fetch(sample(run.state, jax.random.fold_in(key, i), batch_size,
                          None if labels is None else labels[i * batch_size:(i + 1) * batch_size]))
             for i in range(num_batches)]
  return to_unit_range(np.concatenate(batches)[:num_samples])
