"""Variational autoencoders: MLP, convolutional and conditional.

  python -m experiments.train --config=experiments/configs/vae.py:mlp_mnist --workdir=runs/vae_mlp
  python -m experiments.evaluate --workdir=runs/vae_mlp --iwae_k=1000
Variants: mlp_mnist (default; the classic 784-400-20 model), conv_mnist, cvae_mnist (the
measured conditional recipe: a learned prior per class, 8 latents, two 512-unit layers, 20
epochs; docs/results.md), cvae_mnist_dp (the conditional VAE sized for private training, run
with --config.dp.epsilon=E; docs/privacy.md), conv_cifar10 (32x32 RGB, discretised Gaussian
likelihood), tiny.
"""

from ml_collections import ConfigDict

from aigc_jax.train.config import training_config
from experiments.configs import common

VARIANTS = ("mlp_mnist", "conv_mnist", "cvae_mnist", "cvae_mnist_dp", "conv_cifar10", "tiny")


def get_config(variant: str = "mlp_mnist") -> ConfigDict:
  common.check_variant("vae.py", variant, VARIANTS)
  config = training_config()
  config.family = "vae"
  config.model = ConfigDict()
  config.model.arch = "mlp"  # "mlp" or "conv".
  config.model.conditional = False  # True: encoder and decoder see the one-hot label (CVAE).
  config.model.class_prior = False  # Conditional only: a learned Gaussian p(z|y) per class.
  config.model.latent_dim = 20
  config.model.hidden = (400,)  # MLP widths (Kingma & Welling 2014 used 400 for MNIST).
  config.model.channels = (32, 64)  # Conv encoder channels; the decoder mirrors them.
  config.model.dense = 256  # Conv encoder dense width before the posterior.
  config.likelihood = "bernoulli"  # Or "discretized_gaussian" (8-bit RGB).
  config.binarize = False  # True: dynamically binarised MNIST, the published NLL protocol.
  config.beta = 1.0  # Weight of the KL term (beta-VAE when != 1).
  config.kl_warmup_steps = 0  # Linear ramp of beta from 0 over this many steps.
  config.optimizer = ConfigDict()
  config.optimizer.learning_rate = 1e-3
  config.batch_size = 128
  config.steps_per_call = 7  # 469 steps per MNIST epoch = 67 calls of 7.
  config.num_steps = 4690  # 10 epochs of MNIST at batch 128.
  config.eval_every = 469  # Test-set -ELBO once per epoch.
  config.eval_batch_size = 500
  config.sample_every = 469
  config.checkpoint_every = 469
  config.log_every = 100
  if variant == "conv_mnist":
    config.model.arch = "conv"
    config.steps_per_call = 1  # XLA:CPU runs convs in a scanned loop ~7x slower.
    config.model.latent_dim = 32
  if variant == "cvae_mnist":
    config.model.conditional = True  # MLP backbone: scanning 7 steps per call is fast.
    # With N(0, I) for every class, z also carries the class and the decoder half-ignores
    # the label (59% of prior samples were the digit asked for). A prior per class, fewer
    # latents and a wider decoder make the label decide (97%) at a better ELBO.
    config.model.class_prior = True
    config.model.latent_dim = 8
    config.model.hidden = (512, 512)
    config.num_steps = 9380  # 20 epochs.
  if variant == "cvae_mnist_dp":
    private_cvae(config)
  if variant == "conv_cifar10":
    config.data.name = "cifar10"
    config.model.arch = "conv"
    config.model.latent_dim = 128
    config.model.channels = (64, 128)
    config.model.dense = 512
    config.likelihood = "discretized_gaussian"
    config.num_steps = 39_100  # 100 epochs of CIFAR-10 at batch 128.
    config.steps_per_call = 1  # XLA:CPU runs convs in a scanned loop ~7x slower.
    config.eval_every = config.sample_every = config.checkpoint_every = 3910
  if variant == "tiny":
    common.tiny_loop(config)
    config.steps_per_call = 1
    config.model.latent_dim = 4
    config.model.hidden = (16,)
    config.model.channels = (4, 8)
    config.model.dense = 16
    config.eval_every = 2
    config.eval_batch_size = 8
  return config


def private_cvae(config: ConfigDict) -> ConfigDict:
  """cvae_mnist's model with one 256-unit layer, batch 256 and 1,000 steps: the budget of
  a private run on this CPU (docs/privacy.md). Per-example gradients made a step of the
  two 512-unit layers 28x dearer (0.93 s against 0.033 s); DP-SGD's noise shrinks against
  the gradient as the batch grows."""
  config.model.conditional = config.model.class_prior = True
  config.model.latent_dim = 8
  config.model.hidden = (256,)
  config.batch_size = 256
  config.grad_accum_steps = 8  # Per-example gradients of 1/8 of the batch live at once.
  config.steps_per_call = 1
  config.num_steps = 1000
  config.eval_every = config.sample_every = config.checkpoint_every = 250
  return config
