"""The GAN family: losses against hand-computed values, one real step, sharding, tracing."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data.sources import ImageSpec
from aigc_jax.losses.gan import GAN_LOSSES, get_gan_loss
from aigc_jax.train import gan, sharding
from experiments.configs import mlp_gan

SPEC = ImageSpec(image_shape=(8, 8, 1), num_classes=2)


def fake_batch(batch_size=16, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.uniform(-1, 1, (batch_size, *SPEC.image_shape)).astype(np.float32),
          "label": rng.integers(0, 2, batch_size).astype(np.int32)}


def test_non_saturating_loss_matches_hand_computed_values():
  loss = get_gan_loss("non_saturating")
  real, fake = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
  sig = lambda x: 1 / (1 + np.exp(-x))
  expected_d = (np.mean(-np.log(sig(np.array([2.0, -1.0]))))
                + np.mean(-np.log(1 - sig(np.array([0.5, -3.0])))))
  np.testing.assert_allclose(loss.discriminator(real, fake), expected_d, rtol=1e-6)
  np.testing.assert_allclose(loss.generator(fake), np.mean(-np.log(sig(np.array([0.5, -3.0])))),
                             rtol=1e-6)
  # At D's indifference point (logits 0) the losses are 2 ln 2 and ln 2.
  np.testing.assert_allclose(loss.discriminator(jnp.zeros(3), jnp.zeros(3)), 2 * np.log(2),
                             rtol=1e-6)


def test_unknown_loss_lists_registered_names():
  with pytest.raises(ValueError, match="non_saturating"):
    get_gan_loss("wasserstain")
  assert "non_saturating" in GAN_LOSSES


def init(config, mesh=None):
  mesh = mesh or sharding.make_mesh()
  repl = sharding.replicated(mesh)
  state = jax.jit(lambda r: gan.create_state(config, r, SPEC), out_shardings=repl)(
      jax.random.key(0))
  step = jax.jit(gan.make_train_step(config, SPEC),
                 in_shardings=(repl, sharding.batch_sharded(mesh), repl),
                 out_shardings=(repl, repl))
  return state, step, mesh


def test_one_step_updates_both_networks_and_the_ema():
  config = mlp_gan.get_config("tiny")
  state, step, mesh = init(config)
  batch = sharding.to_global(fake_batch(), sharding.batch_sharded(mesh))
  new, metrics = step(state, batch, jax.random.key(1))
  assert int(new.step) == 1
  for name in ("g_params", "d_params", "ema_g_params"):
    before, after = jax.tree.leaves(getattr(state, name)), jax.tree.leaves(getattr(new, name))
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), f"{name} did not move"
  # The EMA moves (1 - decay) of the way from its old value towards the new G.
  old_ema, new_g = jax.tree.leaves(state.ema_g_params)[0], jax.tree.leaves(new.g_params)[0]
  expected = config.ema_decay * old_ema + (1 - config.ema_decay) * new_g
  np.testing.assert_allclose(jax.tree.leaves(new.ema_g_params)[0], expected, rtol=1e-5,
                             atol=1e-7)
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())
  # Freshly initialised D is near indifferent: its loss is close to 2 ln 2.
  assert abs(float(metrics["d_loss"]) - 2 * np.log(2)) < 0.3


def test_generator_gradient_is_taken_through_the_updated_discriminator():
  """The step reuses G's forward pass; its G gradient must equal a direct computation."""
  config = mlp_gan.get_config("tiny")
  state, step, mesh = init(config)
  batch = fake_batch()
  new, metrics = step(state, sharding.to_global(batch, sharding.batch_sharded(mesh)),
                      jax.random.key(1))
  generator, discriminator = gan.build_models(config, SPEC)
  from aigc_jax.train.rng import step_streams
  (latent_rng,) = step_streams(jax.random.key(1), state.step, "latent")
  z = jax.random.normal(latent_rng, (16, config.latent_dim))
  loss = get_gan_loss(config.loss)
  direct = jax.grad(lambda gp: loss.generator(discriminator.apply(
      {"params": new.d_params}, generator.apply({"params": gp}, z))))(state.g_params)
  np.testing.assert_allclose(metrics["g_grad_norm"], jnp.sqrt(sum(
      jnp.sum(g**2) for g in jax.tree.leaves(direct))), rtol=1e-4)


def test_four_devices_give_the_one_device_result():
  assert jax.device_count() == 4
  config = mlp_gan.get_config("tiny")
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    state, step, mesh = init(config, sharding.make_mesh(devices))
    for i in range(3):
      batch = sharding.to_global(fake_batch(seed=i), sharding.batch_sharded(mesh))
      state, metrics = step(state, batch, jax.random.key(7))
    results.append((jax.device_get(state.g_params), jax.device_get(metrics)))
  (g1, m1), (g4, m4) = results
  chex.assert_trees_all_close(g1, g4, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(m1, m4, rtol=1e-5, atol=1e-6)


def test_step_compiles_once_and_makes_no_implicit_transfers():
  config = mlp_gan.get_config("tiny")
  mesh = sharding.make_mesh()
  repl = sharding.replicated(mesh)
  state = jax.jit(lambda r: gan.create_state(config, r, SPEC), out_shardings=repl)(
      jax.random.key(0))
  step = jax.jit(chex.assert_max_traces(gan.make_train_step(config, SPEC), n=1),
                 in_shardings=(repl, sharding.batch_sharded(mesh), repl),
                 out_shardings=(repl, repl), donate_argnums=0)
  batches = [sharding.to_global(fake_batch(seed=i), sharding.batch_sharded(mesh))
             for i in range(3)]
  rng = jax.device_put(jax.random.key(0), repl)
  with jax.transfer_guard("disallow"):
    for batch in batches:
      state, _ = step(state, batch, rng)
  assert int(state.step) == 3
