"""Character-level GPT on Tiny Shakespeare.

  python -m experiments.train --config=experiments/configs/char_gpt.py:cpu --workdir=runs/gpt_cpu
  python -m experiments.sample --workdir=runs/gpt_cpu --prompt="ROMEO:" --num_chars=500
Variants: cpu (default; 4 layers x 4 heads x 128 wide, context 64, batch 12: the size of
the well-known CPU recipe for this dataset), base (6 x 6 x 384, context 256, batch 64,
dropout 0.2), tiny (tests).
"""

from ml_collections import ConfigDict

from aigc_jax.train.config import training_config
from experiments.configs import common

VARIANTS = ("cpu", "base", "tiny")


def get_config(variant: str = "cpu") -> ConfigDict:
  common.check_variant("char_gpt.py", variant, VARIANTS)
  config = training_config()
  config.family = "lm"
  config.data.name = "tiny_shakespeare"
  config.data.eval_split = "validation"
  config.block_size = 64  # Context length in characters.
  config.model = ConfigDict()
  config.model.arch = "transformer"
  config.model.num_layers = 4
  config.model.num_heads = 4
  config.model.width = 128
  config.model.dropout = 0.0
  # Matmul operands of the blocks' Dense layers: "auto" is bf16 (float32 sums) on a CPU with
  # bf16 matmul units, else float32; "float32" reproduces runs from before it existed.
  config.model.dense_operands = "auto"
  config.model.use_bias = True  # GPT-2 layout; False drops them (the reference recipe), same speed.
  config.optimizer = ConfigDict()
  config.optimizer.learning_rate = 1e-3  # Peak; Karpathy's shakespeare_char settings.
  config.optimizer.min_learning_rate = 1e-4  # End of the cosine decay.
  config.optimizer.warmup_steps = 100
  config.optimizer.decay_steps = 2000  # Cosine decay length (usually num_steps).
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.99  # Small batches of tokens: a shorter second-moment memory.
  config.optimizer.weight_decay = 0.1
  config.optimizer.grad_clip = 1.0
  config.batch_size = 12
  config.num_steps = 2000
  config.steps_per_call = 10
  config.log_every = 100
  config.eval_every = 250  # Full validation split (55,770 characters).
  config.eval_batch_size = 256
  config.sample_every = 1000
  config.checkpoint_every = 500
  config.num_grid_samples = 2  # Periodic sample texts written to samples/step_N.txt.
  config.sample_prompt = "\n"
  config.sample_length = 300
  config.sample_temperature = 0.8
  if variant == "base":
    config.block_size = 256
    config.model.num_layers = config.model.num_heads = 6
    config.model.width = 384
    config.model.dropout = 0.2
    config.batch_size = 64
    config.num_steps = config.optimizer.decay_steps = 5000
    config.eval_every = 500
    config.eval_batch_size = 64
  if variant == "tiny":
    common.tiny_loop(config)
    config.steps_per_call = 1
    config.block_size = 16
    config.model.num_layers = config.model.num_heads = 2
    config.model.width = 16
    config.optimizer.warmup_steps = 2
    config.optimizer.decay_steps = 4
    config.eval_every = 2
    config.eval_batch_size = 8
    config.sample_length = 20
  return config
