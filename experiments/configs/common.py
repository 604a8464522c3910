"""What the config files share beyond the library's defaults (aigc_jax.train.config):
variant checking, the GAN options, and the tiny loop of tests and smoke runs."""

from ml_collections import ConfigDict

from aigc_jax.errors import InvalidInputError


def check_variant(config_file: str, variant: str, variants: tuple[str, ...]) -> None:
  if variant not in variants:
    raise InvalidInputError(f"Unknown variant '{variant}' of {config_file}; pick one of "
                            f"{variants}.")


def gan_options(config: ConfigDict) -> ConfigDict:
  """Keys every GAN config shares: objective, regularisers, EMA, optimiser."""
  config.family = "gan"
  config.latent_dim = 100
  config.loss = "non_saturating"  # Name in aigc_jax.losses.gan: non_saturating|hinge|wasserstein.
  config.d_reg = "none"  # aigc_jax.losses.gan_penalties names, comma-separated: r1, wgan_gp.
  config.r1_gamma = 10.0  # R1 weight gamma (Mescheder et al. 2018 use 10 on CelebA/LSUN).
  config.gp_weight = 10.0  # WGAN-GP lambda (Gulrajani et al. 2017).
  config.g_l2 = 0.0  # L2 weight penalty on G: adds g_l2 * 1/2 ||theta_G||^2 to G's loss.
  config.diffaugment = ""  # DiffAugment policy, e.g. "color,translation,cutout"; "" = off.
  config.ema_decay = 0.999  # Sampling uses this Polyak average of G.
  config.ema_start = 0  # Step from which G is averaged; before it the average is G itself.
  # BatchNorm statistics of the averaged G when sampling: "own" (measured for its weights)
  # or "live" (the training G's running statistics).
  config.ema_bn_statistics = "own"
  config.optimizer = ConfigDict()
  config.optimizer.g_learning_rate = 2e-4  # Radford et al. 2015 (DCGAN) settings.
  config.optimizer.d_learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  # Step from which both learning rates fall linearly to 0 at num_steps; -1 = constant.
  config.optimizer.decay_start = -1
  return config


def tiny_loop(config: ConfigDict) -> ConfigDict:
  """A few steps with every loop event firing, for tests and CPU smoke runs."""
  config.batch_size = 16
  config.num_steps = 4
  config.log_every = 2
  config.sample_every = 4
  config.checkpoint_every = 2
  config.num_grid_samples = 4
  return config
