"""A model family is what the shared loop needs to train and sample one kind of model.

Adding a family (GAN, VAE, LM, or a user's own) means writing one module that defines
`FAMILY = Family(...)` and naming it in the config: `--config.family=gan` for the built-in
`aigc_jax.train.gan`, or a full module path such as `--config.family=my_lab.my_family`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from aigc_jax.data.images import ImageSpec
from aigc_jax.data.text import TextSpec
from aigc_jax.errors import InvalidInputError

Spec = ImageSpec | TextSpec  # What the family's models know of the data.
State = Any
Metrics = dict[str, jax.Array]
TrainStep = Callable[[State, dict[str, jax.Array], jax.Array], tuple[State, Metrics]]
# sample(state, rng, num_samples, labels=None) -> images in [-1, 1], (num_samples, H, W, C).
# Conditional families draw balanced labels when none are given.
Sampler = Callable[..., jax.Array]
# eval_step(state, batch, rng) -> per-batch sums over batch["mask"], including "count".
EvalStep = Callable[[State, dict[str, jax.Array], jax.Array], dict[str, jax.Array]]


class Family(NamedTuple):
  """The functions a family provides; each is pure and jit-compatible."""

  create_state: Callable[[ml_collections.ConfigDict, jax.Array, Spec], State]
  make_train_step: Callable[[ml_collections.ConfigDict, Spec], TrainStep]
  make_sampler: Callable[[ml_collections.ConfigDict, Spec], Sampler]
  # Optional: held-out evaluation the loop runs every `eval_every` steps.
  make_eval_step: Callable[[ml_collections.ConfigDict, Spec], EvalStep] | None = None
  # Optional: the float32 Flax module(s) a trained state's parameters drive, for code
  # that uses the model beyond sampling (likelihoods, decoding, scores): the VAE, the
  # Transformer, the GAN's (generator, discriminator).
  build_model: Callable[[ml_collections.ConfigDict, Spec], Any] | None = None


def is_conditional(config: ml_collections.ConfigDict) -> bool:
  """Whether the run's model takes class labels (`model.conditional`; absent means no)."""
  return bool(config.get("model", {}).get("conditional", False))


def balanced_labels(num_samples: int, num_classes: int) -> jax.Array:
  """0, 1, ..., K-1, 0, 1, ...: equal numbers of each class (up to one)."""
  return jnp.arange(num_samples) % num_classes


def get_family(name: str) -> Family:
  module_name = name if "." in name else f"aigc_jax.train.{name}"
  try:
    module = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name != module_name:
      raise
    raise InvalidInputError(
        f"Unknown model family '{name}': no module {module_name}. Built-in: 'gan', 'vae', "
        "'lm'; or give the module path of your own family.") from None
  family = getattr(module, "FAMILY", None)
  if not isinstance(family, Family):
    raise InvalidInputError(f"Module {module_name} defines no `FAMILY = Family(...)`.")
  return family
