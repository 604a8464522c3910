"""The matmul-based convolutions equal flax's Conv / ConvTranspose, outputs and gradients."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from aigc_jax.models.matmul_conv import MatmulConv, MatmulConvTranspose


def assert_same_module(ours, reference, x):
  params = reference.init(jax.random.key(0), x)
  assert (jax.tree.map(np.shape, ours.init(jax.random.key(0), x))
          == jax.tree.map(np.shape, params))
  np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda m: lambda p, x: (m.apply(p, x) ** 2).sum()
  got = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  want = jax.grad(loss(reference), argnums=(0, 1))(params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ours,reference,kernel,stride,shape", [
    (MatmulConvTranspose, nn.ConvTranspose, *case) for case in [
        (3, 2, (2, 7, 7, 3)), (4, 2, (2, 7, 5, 3)), (4, 2, (1, 4, 4, 8)), (5, 2, (2, 3, 6, 2)),
        (4, 1, (2, 6, 6, 3)), (3, 3, (1, 4, 5, 2))]] + [
    (MatmulConv, nn.Conv, *case) for case in [
        (4, 2, (2, 28, 28, 1)), (4, 2, (2, 7, 7, 3)), (3, 2, (1, 8, 5, 2)), (4, 1, (2, 6, 5, 3)),
        (5, 3, (1, 10, 7, 2)), (1, 1, (1, 3, 3, 4))]])
def test_matches_flax(ours, reference, kernel, stride, shape):
  x = jax.random.normal(jax.random.key(1), shape)
  assert_same_module(ours(4, (kernel, kernel), (stride, stride)),
                     reference(4, (kernel, kernel), (stride, stride)), x)
