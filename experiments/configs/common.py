"""Keys every training config shares: data, batch, loop cadence, checkpoints."""

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder


def check_variant(config_file: str, variant: str, variants: tuple[str, ...]) -> None:
  if variant not in variants:
    raise ValueError(f"Unknown variant '{variant}' of {config_file}; pick one of {variants}.")


def base_config() -> ConfigDict:
  config = ConfigDict()
  config.seed = 0  # Sets initialisation, data order and every random stream.
  config.data = ConfigDict()
  config.data.name = "mnist"  # A TFDS name, or "image_folder".
  config.data.split = "train"
  config.data.eval_split = "test"  # Held-out split for families with an eval step.
  config.data.data_dir = placeholder(str)  # TFDS data dir; None -> $TFDS_DATA_DIR or default.
  config.data.manual_dir = placeholder(str)  # Raw files; None -> $AIGC_RAW_DATA_DIR/<name>.
  config.data.image_folder = placeholder(str)  # ROOT/<split>/<class>/*.png for image_folder.
  # Dirty data on purpose (aigc_jax/quality): "kind=rate,..." e.g. "symmetric_labels=0.2".
  config.data.corrupt = ""
  config.data.corrupt_seed = 0
  config.data.ood_source = placeholder(str)  # TFDS name for out_of_distribution images.
  config.data.exclude = placeholder(str)  # .npy of training ids to drop (experiments.clean_data).
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
  return config


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
  config.optimizer = ConfigDict()
  config.optimizer.g_learning_rate = 2e-4  # Radford et al. 2015 (DCGAN) settings.
  config.optimizer.d_learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
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
