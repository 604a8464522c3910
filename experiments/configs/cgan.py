"""Class-conditional GAN: ask for "a 7", get a 7 (label embedding into G, projection D).

  python -m experiments.train --config=experiments/configs/cgan.py:mnist --workdir=runs/cgan
  python -m experiments.sample --workdir=runs/cgan --label=7 --num_samples=64 --output=s.npy
Variants: mnist (default), fashion_mnist, cifar10 (`colour_recipe`) and tiny use the DCGAN
backbone of dcgan.py; mlp_mnist uses the MLP GAN backbone of mlp_gan.py; mnist_dp is mnist
sized for private training (--config.dp.epsilon=E; docs/privacy.md). fashion_mnist
conditions on 5 k-means clusters within each class (data.clusters_per_class). Every GAN
option applies.
"""

from ml_collections import ConfigDict

from experiments.configs import common, dcgan, mlp_gan

VARIANTS = ("mnist", "fashion_mnist", "cifar10", "tiny", "mlp_mnist", "mnist_dp")


def get_config(variant: str = "mnist") -> ConfigDict:
  common.check_variant("cgan.py", variant, VARIANTS)
  if variant == "mlp_mnist":
    config = mlp_gan.get_config("mnist")
    config.model.conditional = True
    return config
  if variant == "mnist_dp":
    return private_cgan(dcgan.get_config("mnist", conditional=True))
  config = dcgan.get_config(variant, conditional=True)
  if variant == "fashion_mnist":
    # G and D see each class as 5 k-means clusters of its images; samples still ask for
    # classes. 8,000 steps, seed 0, on the CPU: FID 1.64 -> 1.16 (floor 0.28; docs/gan.md).
    config.data.clusters_per_class = 5
  if variant == "cifar10":
    colour_recipe(config)
  return config


def colour_recipe(config: ConfigDict) -> ConfigDict:
  """The digits' recipe (dcgan.digits_recipe) on the seed's CIFAR-10 widths: spectral norm
  and the hinge loss in D, class-conditional BatchNorm in G, batch 64, Adam beta1 0 and
  beta2 0.9, G averaged and learning rates falling to 0 over the second half. Without
  D's BatchNorm the step runs ~340 images/s against the seed DCGAN's 180-205 on the
  2-core CPU, so its 16,000 steps take ~51 minutes alone, less than the 57 the seed's
  5,000 took: FID 4.2 against the seed's 22.2, class accuracy 0.66 (docs/results.md)."""
  dcgan.digits_recipe(config)
  config.model.g_widths = (256, 128, 64)
  config.model.d_widths = (64, 128, 256)
  config.num_steps = 16_000
  config.sample_every = config.checkpoint_every = 2_000
  config.ema_start = config.optimizer.decay_start = 8_000
  return config


def private_cgan(config: ConfigDict) -> ConfigDict:
  """The mnist recipe sized for private training (docs/privacy.md; run with
  --config.dp.epsilon=E): half of D's widths, batch 128, 2,000 steps, G averaged from step
  1,000, Adam beta1 0.5. Only D is trained privately, and its per-example gradients cost a
  step 2.5x."""
  config.model.d_widths = (32, 64)
  config.batch_size = 128
  config.grad_accum_steps = 4
  config.num_steps = 2000
  config.ema_start = 1000
  # Measured with constant learning rates and the DCGAN's Adam betas.
  config.optimizer.decay_start = -1
  config.optimizer.b1, config.optimizer.b2 = 0.5, 0.999
  config.sample_every = config.checkpoint_every = 500
  return config
