"""The keys every training run has: seed, batch, parallelism, loop cadence, checkpoints,
warm start. Their defaults and the values each may take (LOOP_RULES) live here and
nowhere else: configs (experiments/configs/) start from `training_config()`, a run checks
its config against the rules before anything else (`validate`), and a checkpoint written
before a key existed gets its default when restored (`with_defaults`).
"""

from __future__ import annotations

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder

from aigc_jax.data.config import (DATA_RULES, OPTIONAL_PATH, Rule, check_rules, data_config,
                                  integer_at_least, one_of)


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
  # Multi-process runs: seconds without a new step after which a process that is waiting
  # in a collective on a stuck peer exits with an error (watchdog.py); 0 = never.
  config.stall_timeout_s = 600
  # Conditional models: the classes sampled for grids and evaluation. "uniform": equal
  # numbers of each; "data": in the training split's class shares (reproduces its balance).
  config.sample_labels = "uniform"
  # Differentially private training (dp.py, docs/privacy.md): set epsilon (the noise is
  # calibrated so num_steps spend it) or noise_multiplier; batch_size is then the expected
  # size of Poisson-sampled batches. Off while both are unset.
  config.dp = ConfigDict()
  config.dp.epsilon = placeholder(float)
  config.dp.noise_multiplier = placeholder(float)
  config.dp.delta = 1e-5
  config.dp.l2_clip = 1.0  # Each example's gradient is clipped to this L2 norm.
  return config


LOOP_RULES: dict[str, Rule] = {
    "seed": integer_at_least(0), "batch_size": integer_at_least(1),
    "steps_per_call": integer_at_least(1), "parallel": one_of("jit", "pmap"),
    "grad_accum_steps": integer_at_least(1), "compute_dtype": one_of("float32", "bfloat16"),
    "fsdp": integer_at_least(1), "num_steps": integer_at_least(1),
    "log_every": integer_at_least(1), "sample_every": integer_at_least(0),
    "num_grid_samples": integer_at_least(1), "checkpoint_every": integer_at_least(0),
    "keep_checkpoints": integer_at_least(1), "eval_every": integer_at_least(0),
    "eval_batch_size": integer_at_least(1), "init_from": OPTIONAL_PATH,
    "stall_timeout_s": integer_at_least(0), "sample_labels": one_of("uniform", "data"),
}


def _positive_or_unset(v) -> bool:
  return v is None or (isinstance(v, float) and v > 0)


DP_RULES: dict[str, Rule] = {
    "epsilon": (_positive_or_unset, "a positive float, or unset"),
    "noise_multiplier": (_positive_or_unset, "a positive float, or unset"),
    "delta": (lambda v: isinstance(v, float) and 0 < v < 1, "a float in (0, 1)"),
    "l2_clip": (lambda v: isinstance(v, float) and v > 0, "a positive float"),
}


def validate(config: ConfigDict) -> None:
  """Fails on the first shared key whose value cannot work, naming it and the rule."""
  check_rules(config, LOOP_RULES)
  check_rules(config.dp, DP_RULES, prefix="dp.")
  check_rules(config.data, DATA_RULES, prefix="data.")


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
