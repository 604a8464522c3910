"""Class-conditional GAN: ask for "a 7", get a 7 (label embedding into G, projection D).

  python -m experiments.train --config=experiments/configs/cgan.py:mnist --workdir=runs/cgan
  python -m experiments.sample --workdir=runs/cgan --label=7 --num_samples=64 --output=s.npy
Variants: mnist (default), fashion_mnist, cifar10 and tiny use the DCGAN backbone of
dcgan.py; mlp_mnist uses the MLP GAN backbone of mlp_gan.py. Every GAN option applies.
"""

from ml_collections import ConfigDict

from experiments.configs import common, dcgan, mlp_gan

VARIANTS = ("mnist", "fashion_mnist", "cifar10", "tiny", "mlp_mnist")


def get_config(variant: str = "mnist") -> ConfigDict:
  common.check_variant("cgan.py", variant, VARIANTS)
  if variant == "mlp_mnist":
    config = mlp_gan.get_config("mnist")
    config.model.conditional = True
    return config
  return dcgan.get_config(variant, conditional=True)
