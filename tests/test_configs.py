"""Every variant of every config file builds, and the family it names exists."""

import jax
import pytest

from aigc_jax.data.config import data_config
from aigc_jax.data.images import ImageSpec
from aigc_jax.train.config import training_config
from aigc_jax.train.family import get_family
from experiments.cli import config_keys
from experiments.configs import cgan, char_gpt, clean, dcgan, mlp_gan, vae

CONFIGS = {"mlp_gan": mlp_gan, "dcgan": dcgan, "cgan": cgan, "vae": vae, "char_gpt": char_gpt}
SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


@pytest.mark.parametrize("name,variant", [(n, v) for n, m in CONFIGS.items()
                                          for v in m.VARIANTS])
def test_each_variant_builds_and_names_a_family(name, variant):
  config = CONFIGS[name].get_config(variant)
  get_family(config.family)
  # Starts from the library's defaults: every shared key is there, set in one place.
  assert set(config_keys(training_config())) <= set(config_keys(config))
  if config.steps_per_call > 1:
    assert config.model.arch not in ("conv", "dcgan"), "convs run slowly in a scanned loop on CPU"
  if config.family == "gan" and config.data.name in SHAPES:  # The models fit the data.
    spec = ImageSpec(image_shape=SHAPES[config.data.name], num_classes=10)
    family = get_family(config.family)
    state = jax.eval_shape(lambda: family.create_state(config, jax.random.key(0), spec))
    images = jax.eval_shape(lambda s: family.make_sampler(config, spec)(
        s, jax.random.key(0), 2), state)
    assert images.shape == (2, *spec.image_shape)


@pytest.mark.parametrize("module", CONFIGS.values())
def test_unknown_variant_is_refused_with_the_choices(module):
  with pytest.raises(ValueError, match="pick one of"):
    module.get_config("nope")


def test_unknown_family_names_the_builtins():
  with pytest.raises(ValueError, match="'gan', 'vae', 'lm'"):
    get_family("diffusion")


@pytest.mark.parametrize("variant", clean.VARIANTS)
def test_cleaning_configs_carry_data_keys_but_no_training_keys(variant):
  keys = set(config_keys(clean.get_config(variant)))
  assert {f"data.{k}" for k in config_keys(data_config())} <= keys
  training_only = set(config_keys(training_config())) - {"seed", "data"} - {
      k for k in keys if k.startswith("data")}
  assert not training_only & keys, training_only & keys
