"""What the dirty-data study runs: its budgets, its models and the flags each run takes.

Kept apart from the entry point (experiments/study_dirty_data.py) so the settings the
published tables were measured with can be read, and tested, without defining its flags.
"""

# Budgets on the 2-core CPU; docs/data_quality.md gives the wall time of each. The cGAN is
# the cgan.py:mnist recipe at a quarter of its steps, with the average of G and the constant
# rates that docs/gan.md measured best at that length (its row H); the cVAE its full recipe.
VARIANTS = {
    "default": {"rates": (0.0, 0.1, 0.2, 0.4), "steps": {"cgan": 2000, "cvae": 9380,
                "char_gpt": 1000}, "num_samples": 10_000, "cv_folds": 4, "cv_epochs": 2,
                "augment_samples": 10_000, "cgan_ema": (1000, 0.99), "cgan_adam": (0.5, 0.999)},
    "quick": {"rates": (0.0, 0.4), "steps": {"cgan": 200, "cvae": 400, "char_gpt": 150},
              "num_samples": 2000, "cv_folds": 2, "cv_epochs": 1, "augment_samples": 2000,
              "cgan_ema": (100, 0.99), "cgan_adam": (0.5, 0.999)},
}
# Models per data kind, and the cleaning config of that data.
MODELS = {"images": {"cvae": "experiments/configs/vae.py:cvae_mnist",
                     "cgan": "experiments/configs/cgan.py:mnist"},
          "text": {"char_gpt": "experiments/configs/char_gpt.py:cpu"}}
CLEAN_CONFIGS = {"images": "experiments/configs/clean.py:mnist",
                 "text": "experiments/configs/clean.py:shakespeare"}


def model_flags(model: str, budget: dict) -> list[str]:
  """The experiments.train flags of one study run of `model` under `budget`."""
  steps = budget["steps"][model]
  flags = [f"--config.num_steps={steps}", f"--config.checkpoint_every={steps}",
            f"--config.sample_every={steps}", "--config.eval_every=0"]
  if model == "cgan":
    # The published study's cGAN (docs/gan.md row H): G averaged from ema_start at
    # ema_decay, constant learning rates, and the Adam betas it was measured with.
    (ema_start, ema_decay), (b1, b2) = budget["cgan_ema"], budget["cgan_adam"]
    flags += [f"--config.ema_start={ema_start}", f"--config.ema_decay={ema_decay}",
               "--config.optimizer.decay_start=-1", f"--config.optimizer.b1={b1}",
               f"--config.optimizer.b2={b2}"]
  return flags
