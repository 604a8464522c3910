"""DCGAN (Radford et al. 2015): BatchNorm transposed-conv G, strided-conv D, Adam 2e-4 b1 0.5.

  python -m experiments.train --config=experiments/configs/dcgan.py:mnist --workdir=runs/dcgan
Variants: mnist (default; 28x28, G 100 -> 7x7x256 -> 14x14x128 -> 28x28x1), fashion_mnist,
cifar10 (32x32x3, G 100 -> 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x3), tiny (tests).
Losses, regularisers and DiffAugment: see common.gan_options and docs/gan.md, e.g.
  --config.loss=hinge --config.model.d_norm=spectral --config.d_reg=r1 --config.r1_gamma=1
"""

from ml_collections import ConfigDict

from aigc_jax.train.config import training_config
from experiments.configs import common

VARIANTS = ("mnist", "fashion_mnist", "cifar10", "tiny")


def get_config(variant: str = "mnist", conditional: bool = False) -> ConfigDict:
  common.check_variant("dcgan.py", variant, VARIANTS)
  config = common.gan_options(training_config())
  config.model = ConfigDict()
  config.model.arch = "dcgan"
  # 28x28 data: two 2x upsamplings from 7x7 (7 -> 14 -> 28), so two widths; D mirrors it.
  config.model.g_widths = (256, 128)  # Channels after the dense projection, then per stage.
  config.model.d_widths = (64, 128)  # Channels of each 4x4 stride-2 conv of D.
  config.model.d_norm = "batch"  # "batch" (DCGAN), "spectral" (SN-GAN) or "none" (WGAN-GP).
  config.model.conditional = conditional  # True: label embedding into G, projection D.
  config.model.label_features = 32  # Width of G's label embedding.
  config.num_steps = 5_000  # About 11 epochs of MNIST at batch 128.
  config.sample_every = 500
  if variant == "fashion_mnist":
    config.data.name = "fashion_mnist"
  if variant == "cifar10":
    config.data.name = "cifar10"
    config.model.g_widths = (256, 128, 64)  # 4 -> 8 -> 16 -> 32.
    config.model.d_widths = (64, 128, 256)
    config.num_steps = 40_000  # About 100 epochs of CIFAR-10.
  if variant == "tiny":
    common.tiny_loop(config)
    config.model.g_widths = (16, 8)
    config.model.d_widths = (8, 16)
    config.model.label_features = 4
    config.latent_dim = 8
  return config
