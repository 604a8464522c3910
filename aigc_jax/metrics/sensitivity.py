"""Is a feature space ready to judge generators? Degrade real images on purpose and see
whether the metrics move.

A perfect generator scores the real floor (held-out reals against other reals). Each
degradation below is a known, mild failure; a feature network whose FID cannot tell it
from the floor cannot tell a good generator from a flawed one either. The degraded sets
are made from the *other* reals, so the floor row is their undegraded version.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aigc_jax.data.corrupt import gaussian_blur
from aigc_jax.metrics.image_report import real_floor


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
  return np.clip(np.round(gaussian_blur(images.astype(np.float32), sigma)), 0, 255
                 ).astype(np.uint8)


def noisy(images: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
  """Additive Gaussian noise of `std` in the [0, 1] pixel range."""
  noise = rng.normal(0.0, std * 255, images.shape)
  return np.clip(np.round(images + noise), 0, 255).astype(np.uint8)


def one_image_repeated(images: np.ndarray, share: float, rng: np.random.Generator
                       ) -> np.ndarray:
  """A `share` of the images replaced by copies of one of them: a partial mode collapse."""
  out = images.copy()
  chosen = rng.choice(len(images), int(round(share * len(images))), replace=False)
  out[chosen] = images[rng.integers(len(images))]
  return out


def degradations(seed: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
  """The rows of the sensitivity table: name -> uint8 images -> uint8 images."""
  rng = lambda: np.random.default_rng(seed)
  return {"none (the real floor)": lambda x: x,
          "gaussian blur sigma=1": lambda x: blurred(x, 1.0),
          "additive noise sigma=0.1": lambda x: noisy(x, 0.1, rng()),
          "10% replaced by one image": lambda x: one_image_repeated(x, 0.1, rng())}


def sensitivity_table(embed, held_out: np.ndarray, others: np.ndarray, seed: int = 0
                      ) -> dict[str, dict]:
  """{degradation: real_floor metrics of the held-out images against the degraded others}.

  `embed` maps uint8 images to (features, probabilities) in the feature network.
  """
  real_feats, _ = embed(held_out)
  return {name: real_floor(real_feats, embed(degrade(others))[0])
          for name, degrade in degradations(seed).items()}
