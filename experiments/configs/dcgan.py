"""DCGAN (Radford et al. 2015): BatchNorm transposed-conv G, strided-conv D, Adam 2e-4 b1 0.5.

  python -m experiments.train --config=experiments/configs/dcgan.py:mnist --workdir=runs/dcgan
Variants:
- cifar10: the seed text's DCGAN, unchanged (32x32x3, G 100 -> 4x4x256 -> 8x8x128 ->
  16x16x64 -> 32x32x3, D 64-128-256, batch 128, EMA from step 0).
- mnist (default), fashion_mnist: the 28x28 recipe measured in docs/gan.md
  (`digits_recipe`): half the seed's widths (G 7x7x128 -> 14x14x64 -> 28x28x1, D 64-128),
  spectral norm in D and the hinge loss, batch 64, 8,000 steps, learning rates falling
  linearly to 0 and G averaged from step 4,000, class-conditional BatchNorm in a
  conditional G, Adam beta1 0 and beta2 0.9 for both networks. It trains in 12-18 minutes
  on a 2-core CPU. Without labels (this file's variants) G and D are conditioned on 50
  k-means clusters of the training images instead (`self_conditioned`); the plain
  label-free model is --config.model.conditional=False --config.model.g_conditional_norm=False
  --config.data.cluster_labels=0 --config.sample_labels=uniform --config.latent_dim=32.
- tiny: tests.
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
  # The seed's 28x28 widths: two 2x upsamplings from 7x7 (7 -> 14 -> 28); D mirrors them.
  config.model.g_widths = (256, 128)  # Channels after the dense projection, then per stage.
  config.model.d_widths = (64, 128)  # Channels of each 4x4 stride-2 conv of D.
  config.model.d_norm = "batch"  # "batch" (DCGAN), "spectral" (SN-GAN) or "none" (WGAN-GP).
  config.model.conditional = conditional  # True: label embedding into G, projection D.
  config.model.label_features = 32  # Width of G's label embedding.
  config.model.g_conditional_norm = False  # True: class-conditional BatchNorm in G too.
  # The convs' matmul operands: "auto" is bfloat16 (bf16-rounded, float32 sums) on a CPU
  # with AMX / AVX512-BF16, where the step is ~1.4x float32's and trains to the same FID
  # (README, Speed), and float32 elsewhere.
  config.model.conv_operands = "auto"
  config.sample_every = 500
  if variant in ("mnist", "fashion_mnist"):
    digits_recipe(config)
    if not conditional:
      self_conditioned(config)
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


def digits_recipe(config: ConfigDict) -> ConfigDict:
  """The best 28x28 recipe measured on the 2-core CPU (docs/gan.md has the sweep).

  What mattered: not sampling from an average that still remembers the untrained G
  (`ema_start`), spectral norm with the hinge loss in place of D's BatchNorm (FID 22.6 ->
  15.3 and 14.4 at two seeds after 2,000 steps, and 20-30 % more steps/s), and the steps a
  CPU budget buys (the half-width G runs 1.4x the steps/s of the seed's widths; quarter
  widths lost quality). Class-conditional BatchNorm moved the numbers by less than one
  seed's noise and is kept for its class accuracy. Learning rates falling linearly to 0
  over the second half took the 8,000-step cGAN from FID 6.70 to 5.65 (seed 0; 5.60 at
  seed 1); from step 1,000 of a 2,000-step run the same decay hurt, while G still
  improved fast.
  """
  config.model.g_widths = (128, 64)
  config.model.d_widths = (64, 128)
  config.model.g_conditional_norm = config.model.conditional
  config.model.d_norm = "spectral"
  config.loss = "hinge"
  config.batch_size = 64
  config.num_steps = 8_000  # 8.5 epochs of 60,000 images at batch 64.
  config.sample_every = config.checkpoint_every = 1_000
  config.ema_start = 4_000
  config.optimizer.decay_start = 4_000
  # Adam with beta1 0 and beta2 0.9 (SN-GAN's setting), at 8,000 steps on the CPU
  # (docs/gan.md): Fashion-MNIST cGAN FID 1.86 -> 1.64 / 1.68 (two seeds); MNIST cGAN
  # 5.65 / 5.60 -> 5.12 / 5.59 with class accuracy 0.981 / 0.979 -> 0.984 / 0.983;
  # label-free MNIST 51.4 -> 29.7 together with a 32-d latent.
  config.optimizer.b1, config.optimizer.b2 = 0.0, 0.9
  return config


def self_conditioned(config: ConfigDict, num_clusters: int = 50) -> ConfigDict:
  """The conditional recipe on k-means clusters of the training images instead of labels
  (aigc_jax/data/clusters.py), sampled in the clusters' shares: no label is used.

  Label-free, the recipe drew a third of its digits as no digit at all (FID 14x the real
  floor); on 50 pixel clusters, which agree 81 % with the digits, it comes close to the
  conditional model (docs/gan.md)."""
  config.model.conditional = config.model.g_conditional_norm = True
  config.data.cluster_labels = num_clusters
  config.sample_labels = "data"
  return config
