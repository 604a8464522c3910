"""GroupedBatchNorm equals nn.BatchNorm run on each group as a batch of its own."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.errors import InvalidInputError
from aigc_jax.models.grouped_batch_norm import GroupedBatchNorm

MOMENTUM = 0.9


def reference_pair(variables, pair):
  """nn.BatchNorm vmapped over a (2, B, ...) pair; running statistics averaged, as the GAN
  step did before it ran D on one batch."""
  def apply(x):
    return nn.BatchNorm(use_running_average=False, momentum=MOMENTUM).apply(
        variables, x, mutable=["batch_stats"])
  y, updates = jax.vmap(apply)(pair)
  return y, jax.tree.map(lambda s: s.mean(0), updates)


def random_variables(features):
  keys = jax.random.split(jax.random.key(3), 4)
  params = {"scale": 1 + 0.1 * jax.random.normal(keys[0], (features,)),
            "bias": 0.1 * jax.random.normal(keys[1], (features,))}
  stats = {"mean": jax.random.normal(keys[2], (features,)),
           "var": jnp.exp(jax.random.normal(keys[3], (features,)))}
  return {"params": params, "batch_stats": stats}


def test_two_groups_equal_batchnorm_on_each_half():
  pair = 3 + 2 * jax.random.normal(jax.random.key(0), (2, 4, 5, 5, 6))
  variables = random_variables(6)
  module = GroupedBatchNorm(MOMENTUM)
  apply = lambda v, x: module.apply(v, x, True, 2, mutable=["batch_stats"])
  y, updates = apply(variables, pair.reshape(8, 5, 5, 6))
  want_y, want_updates = reference_pair(variables, pair)
  np.testing.assert_allclose(y, want_y.reshape(y.shape), rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(want_updates)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # Gradients with respect to the parameters and the input, through the statistics.
  weights = jax.random.normal(jax.random.key(1), pair.shape)
  loss = lambda out: jnp.sum(weights * out.reshape(pair.shape) ** 2)
  got = jax.grad(lambda v, x: loss(apply(v, x)[0]), argnums=(0, 1))(
      variables, pair.reshape(8, 5, 5, 6))
  want = jax.grad(lambda v, x: loss(reference_pair(v, x)[0]), argnums=(0, 1))(variables, pair)
  np.testing.assert_allclose(got[1].reshape(pair.shape), want[1], rtol=1e-4, atol=1e-4)
  for name in ("scale", "bias"):
    np.testing.assert_allclose(got[0]["params"][name], want[0]["params"][name], rtol=1e-4)


@pytest.mark.parametrize("train", [True, False])
def test_one_group_is_flax_batchnorm_with_its_names(train):
  x = 1 + jax.random.normal(jax.random.key(0), (6, 3, 3, 4))
  reference = nn.BatchNorm(use_running_average=not train, momentum=MOMENTUM)
  variables = random_variables(4)
  assert (jax.tree.map(np.shape, GroupedBatchNorm(MOMENTUM).init(jax.random.key(0), x))
          == jax.tree.map(np.shape, reference.init(jax.random.key(0), x)))
  got = GroupedBatchNorm(MOMENTUM).apply(variables, x, train, mutable=["batch_stats"])
  want = reference.apply(variables, x, mutable=["batch_stats"])
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_bfloat16_inputs_and_parameters_give_bfloat16():
  variables = random_variables(4)  # As MixedPrecision applies it: bf16 parameters only.
  variables["params"] = jax.tree.map(lambda a: a.astype(jnp.bfloat16), variables["params"])
  y, _ = GroupedBatchNorm().apply(variables, jnp.ones((4, 4), jnp.bfloat16), True, 2,
                                  mutable=["batch_stats"])
  assert y.dtype == jnp.bfloat16


def test_a_batch_that_does_not_split_is_named():
  with pytest.raises(InvalidInputError, match="5 does not split into 2"):
    GroupedBatchNorm().apply(random_variables(4), jnp.ones((5, 4)), True, 2,
                             mutable=["batch_stats"])
