"""The keys every training run has: seed, batch, parallelism, loop cadence, checkpoints,
warm start. Their defaults live here and nowhere else: configs (experiments/configs/)
start from `training_config()`, and a checkpoint written before a key existed gets its
default when restored (`with_defaults`).
"""

from __future__ import annotations

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder

from aigc_jax.data.config import data_config


def loop_config() -> ConfigDict:
  config = ConfigDict()
  config.seed = 0  # Sets initialisation, data order and every random stream.
  config.batch_size = 128  # Global batch, split over processes and devices.
  config.steps_per_call = 1  # Train steps scanned per jitted call (saves dispatch).
  config.parallel = "jit"  # "jit": sharded jit over a device mesh; "pmap": jax.pmap + pmean.
  config.grad_accum_steps = 1  # >1: each step's gradient in this many microbatches (memory).
  config.compute_dtype = "float32"  # "bfloat16": bf16 compute, float32 weights (accelerators).
  config.fsdp = 1  # >1: split the train state over this many devices (jit only); see sharding.py.
  config.num_steps = 10_000
  config.log_every = 100
  config.sample_every = 1_000
  config.num_grid_samples = 64  # Images in each samples/step_N.png grid.
  config.checkpoint_every = 1_000
  config.keep_checkpoints = 3
  config.eval_every = 0  # Steps between held-out evaluations; 0 = never (GANs: see metrics).
  config.eval_batch_size = 500
  # Another run's folder: a fresh run starts from its parameters (not its optimiser state
  # or step). The same model is required; a resumable checkpoint in --workdir wins.
  config.init_from = placeholder(str)
  return config


def training_config() -> ConfigDict:
  """`loop_config()` with the `data` keys: what every family's config starts from."""
  config = loop_config()
  config.data = data_config()
  return config


def with_defaults(saved: dict) -> ConfigDict:
  """A saved config, with the default of every shared key it predates."""
  config = training_config()
  config.update(saved)
  return config
