"""Every variant of every config file builds, and the family it names exists."""

import pytest

from aigc_jax.train.family import get_family
from experiments.configs import char_gpt, mlp_gan, vae

CONFIGS = {"mlp_gan": mlp_gan, "vae": vae, "char_gpt": char_gpt}


@pytest.mark.parametrize("name,variant", [(n, v) for n, m in CONFIGS.items()
                                          for v in m.VARIANTS])
def test_each_variant_builds_and_names_a_family(name, variant):
  config = CONFIGS[name].get_config(variant)
  get_family(config.family)
  assert config.batch_size > 0 and config.num_steps > 0
  if config.steps_per_call > 1:
    assert config.model.arch != "conv", "convs run slowly inside a scanned loop on CPU"


@pytest.mark.parametrize("module", CONFIGS.values())
def test_unknown_variant_is_refused_with_the_choices(module):
  with pytest.raises(ValueError, match="pick one of"):
    module.get_config("nope")


def test_unknown_family_names_the_builtins():
  with pytest.raises(ValueError, match="'gan', 'vae', 'lm'"):
    get_family("diffusion")
