"""The phase-decomposed transposed convolution equals flax's ConvTranspose."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from aigc_jax.models.conv_transpose import PhaseConvTranspose


@pytest.mark.parametrize("kernel,shape", [(3, (2, 7, 7, 3)), (4, (2, 7, 5, 3)),
                                          (4, (1, 4, 4, 8)), (5, (2, 3, 6, 2))])
def test_outputs_and_gradients_match_conv_transpose(kernel, shape):
  x = jax.random.normal(jax.random.key(1), shape)
  reference = nn.ConvTranspose(4, (kernel, kernel), strides=(2, 2))
  params = reference.init(jax.random.key(0), x)
  phased = PhaseConvTranspose(4, (kernel, kernel), strides=(2, 2))
  assert (jax.tree.map(np.shape, phased.init(jax.random.key(0), x))
          == jax.tree.map(np.shape, params))
  np.testing.assert_allclose(phased.apply(params, x), reference.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda m: lambda p, x: (m.apply(p, x) ** 2).sum()
  got = jax.grad(loss(phased), argnums=(0, 1))(params, x)
  want = jax.grad(loss(reference), argnums=(0, 1))(params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
