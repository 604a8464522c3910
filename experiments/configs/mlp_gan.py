"""MLP GAN of the seed texts (non-saturating loss, Adam 2e-4, b1=0.5, batch 128).

  python -m experiments.train --config=experiments/configs/mlp_gan.py:mnist --workdir=runs/mlp_gan
Variants: mnist (default; the seed text's model and settings, unchanged), mnist_r1 (the same
networks stabilised: R1 on real data with gamma 1, G averaged from the midpoint; it cures
the seed model's mode collapse, docs/gan.md), fashion_mnist, tiny (a few CPU seconds; tests).
Every GAN option (loss, d_reg, g_l2, diffaugment, model.conditional, model.d_norm) is
described in common.gan_options and docs/gan.md.
"""

from ml_collections import ConfigDict

from aigc_jax.train.config import training_config
from experiments.configs import common

VARIANTS = ("mnist", "mnist_r1", "fashion_mnist", "tiny")


def get_config(variant: str = "mnist") -> ConfigDict:
  common.check_variant("mlp_gan.py", variant, VARIANTS)
  config = common.gan_options(training_config())
  config.model = ConfigDict()
  config.model.arch = "mlp"
  config.model.g_hidden = (128, 256, 512)
  config.model.d_hidden = (512, 256, 128)
  config.model.negative_slope = 0.01  # LeakyReLU slope of the seed model.
  config.model.conditional = False  # True: label embedding into G, projection D.
  config.model.label_features = 32  # Width of G's label embedding.
  config.model.d_norm = "none"  # "none" or "spectral" (spectral norm on every D layer).
  # The Dense layers' matmul operands: "auto" is bfloat16 (bf16-rounded, float32 sums) on a
  # CPU with AMX / AVX512-BF16, where it makes the step 1.5x faster and trains to the same
  # FID as float32 (README, Speed), and float32 elsewhere.
  config.model.dense_operands = "auto"
  config.num_steps = 10_000  # About 21 epochs of MNIST at batch 128.
  # 25 steps per jitted call train exactly as one (tests/test_loop.py) and keep the host's
  # per-call work off a step this short: the input pipeline adds 0-4 % to the bare step,
  # 6 % at 10 steps per call (README, Speed).
  config.steps_per_call = 25
  if variant == "mnist_r1":
    config.d_reg = "r1"
    config.r1_gamma = 1.0  # Small for 28x28 grey images (10 is the CelebA/LSUN value).
    config.ema_start = config.num_steps // 2
  if variant == "fashion_mnist":
    config.data.name = "fashion_mnist"
  if variant == "tiny":
    common.tiny_loop(config)
    config.steps_per_call = 1
    config.model.g_hidden = (16, 32)
    config.model.d_hidden = (32, 16)
    config.latent_dim = 8
  return config
