"""The GAN family: losses against hand-computed values, one real step, sharding, tracing."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data.images import ImageSpec
from aigc_jax.losses import gan as gan_losses, gan_penalties
from aigc_jax.losses.gan import GAN_LOSSES, GANLoss, get_gan_loss
from aigc_jax.models.dcgan import DCGANGenerator, upsampling_plan
from aigc_jax.train import gan, sharding
from experiments.configs import cgan, dcgan, mlp_gan

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


def test_the_average_is_g_itself_until_ema_start():
  config = mlp_gan.get_config("tiny")
  config.ema_start = 2
  state, step, mesh = init(config)
  batch = sharding.to_global(fake_batch(), sharding.batch_sharded(mesh))
  for i in range(3):
    old = state
    state, _ = step(state, batch, jax.random.key(i))
    ema, g = jax.tree.leaves(state.ema_g_params)[0], jax.tree.leaves(state.g_params)[0]
    if i < 2:  # Steps 0 and 1 come before ema_start: the untrained G is forgotten.
      np.testing.assert_array_equal(ema, g)
    else:
      expected = config.ema_decay * jax.tree.leaves(old.ema_g_params)[0] + (
          1 - config.ema_decay) * g
      np.testing.assert_allclose(ema, expected, rtol=1e-5, atol=1e-7)
      assert not np.allclose(ema, g)


def test_learning_rates_hold_then_fall_linearly_to_zero_at_the_last_step():
  config = mlp_gan.get_config("tiny")
  assert gan.learning_rate(2e-4, config) == 2e-4  # decay_start -1: constant.
  config.num_steps, config.optimizer.decay_start = 8, 4
  schedule = gan.learning_rate(2e-4, config)
  np.testing.assert_allclose([schedule(s) for s in (0, 4, 6, 8)], [2e-4, 2e-4, 1e-4, 0.0],
                             atol=1e-12)
  # At a learning rate of 0 a step leaves both networks where they are.
  config.num_steps, config.optimizer.decay_start = 1, 0
  state, step, mesh = init(config)
  batch = sharding.to_global(fake_batch(), sharding.batch_sharded(mesh))
  for i in range(2):
    old, (state, _) = state, step(state, batch, jax.random.key(i))
  chex.assert_trees_all_equal((old.g_params, old.d_params), (state.g_params, state.d_params))


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


@pytest.mark.parametrize("make_config", [lambda: mlp_gan.get_config("tiny"),
                                         lambda: cgan.get_config("tiny")])
def test_four_devices_give_the_one_device_result(make_config):
  """Also for BatchNorm: its statistics are over the global batch, however it is sharded."""
  assert jax.device_count() == 4
  config = make_config()
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


def tiny(base, model=None, **overrides):
  config = base.get_config("tiny")
  config.update(overrides)
  config.model.update(model or {})
  return config


# Every loss meets both backbones; so does every regulariser and D normalisation.
COMBINATIONS = {
    "mlp_cond_hinge_r1_spectral_aug_l2": tiny(
        mlp_gan, loss="hinge", d_reg="r1", g_l2=1e-3, diffaugment="translation,cutout",
        model={"conditional": True, "d_norm": "spectral"}),
    "mlp_wasserstein_gp": tiny(mlp_gan, loss="wasserstein", d_reg="wgan_gp"),
    "mlp_cond_r1_spectral_bf16_operands": tiny(  # Widths that take bf16 (>= 64).
        mlp_gan, d_reg="r1", model={"conditional": True, "d_norm": "spectral",
                                    "dense_operands": "bfloat16", "g_hidden": (64, 64),
                                    "d_hidden": (64, 64)}),
    "dcgan_batchnorm": tiny(dcgan),
    "dcgan_cond_hinge_r1_spectral": tiny(cgan, loss="hinge", d_reg="r1",
                                         model={"d_norm": "spectral"}),
    "dcgan_wasserstein_gp_nonorm": tiny(dcgan, loss="wasserstein", d_reg="wgan_gp",
                                        model={"d_norm": "none"}),
    "dcgan_cond_r1_gp_aug_l2": tiny(cgan, d_reg="r1,wgan_gp", g_l2=1e-3,
                                    diffaugment="color,translation,cutout"),
    "dcgan_cond_batchnorm_in_g": tiny(cgan, model={"g_conditional_norm": True}),
    "dcgan_cond_hinge_r1_spectral_bf16_operands": tiny(  # Widths that take bf16 (>= 64).
        cgan, loss="hinge", d_reg="r1", model={"d_norm": "spectral", "conv_operands": "bfloat16",
                                              "g_widths": (64, 64), "d_widths": (64, 64)}),
}


def moved(before, after):
  return any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before),
                                                   jax.tree.leaves(after)))


@pytest.mark.parametrize("name", sorted(COMBINATIONS))
def test_one_step_of_each_model_loss_and_regularizer(name):
  config = COMBINATIONS[name]
  state, step, mesh = init(config)
  new, metrics = step(state, sharding.to_global(fake_batch(), sharding.batch_sharded(mesh)),
                      jax.random.key(1))
  assert int(new.step) == 1
  assert moved(state.g_params, new.g_params) and moved(state.d_params, new.d_params)
  if jax.tree.leaves(state.g_batch_stats):  # BatchNorm running statistics follow the batch.
    assert moved(state.g_batch_stats, new.g_batch_stats)
  metrics = jax.device_get(metrics)
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  for reg in config.d_reg.split(","):
    if reg != "none":
      assert metrics[f"d_reg_{reg}"] > 0
  assert ("g_l2_penalty" in metrics) == bool(config.g_l2)
  images = jax.jit(gan.make_sampler(config, SPEC), static_argnums=2)(new, jax.random.key(2), 6)
  assert images.shape == (6, *SPEC.image_shape)
  assert float(jnp.max(jnp.abs(images))) <= 1.0


@pytest.mark.parametrize("family,key,widths", [
    (dcgan, "conv_operands", {"g_widths": (64, 64), "d_widths": (64, 64)}),
    (mlp_gan, "dense_operands", {"g_hidden": (64, 64), "d_hidden": (64, 64)})])
def test_bfloat16_operands_train_as_float32_does_up_to_rounding(family, key, widths):
  batch = fake_batch()
  metrics = {}
  for operands in ("float32", "bfloat16"):
    state, step, mesh = init(tiny(family, model={key: operands, **widths}))
    _, metrics[operands] = jax.device_get(step(
        state, sharding.to_global(batch, sharding.batch_sharded(mesh)), jax.random.key(1)))
  # Losses within bf16's rounding; gradient norms a little wider (D's BatchNorm divides
  # by the small batch's spread). Measured: DCGAN 0.004-0.08 % and 0.07-0.3 %, MLP
  # 0.04-0.07 % and 0.08-0.5 %.
  for name, tolerance in (("d_loss", 3e-3), ("g_loss", 3e-3), ("d_grad_norm", 3e-2),
                          ("g_grad_norm", 3e-2)):
    want, got = metrics["float32"][name], metrics["bfloat16"][name]
    assert got != want and abs(got - want) < tolerance * abs(want), (name, got, want)


def test_conditional_models_listen_to_the_label():
  config = cgan.get_config("tiny")
  state, step, mesh = init(config)
  generator, discriminator = gan.build_models(config, SPEC)
  z = jnp.ones((2, config.latent_dim))
  g_vars = {"params": state.g_params, "batch_stats": state.g_batch_stats}
  a, b = (generator.apply(g_vars, z, jnp.array([k, k]), train=False) for k in (0, 1))
  assert not np.allclose(a, b)
  d_vars = {"params": state.d_params, "batch_stats": state.d_batch_stats}
  x = jnp.asarray(fake_batch(2)["image"])
  logits = [discriminator.apply(d_vars, x, jnp.array([k, k]), train=False) for k in (0, 1)]
  assert not np.allclose(*logits)
  sample = gan.make_sampler(config, SPEC)
  balanced = sample(state, jax.random.key(0), 4)
  explicit = sample(state, jax.random.key(0), 4, jnp.array([0, 1, 0, 1]))
  np.testing.assert_allclose(balanced, explicit)  # No labels -> 0, 1, 0, 1, ...
  with pytest.raises(ValueError, match="unconditional"):
    gan.make_sampler(mlp_gan.get_config("tiny"), SPEC)(state, jax.random.key(0), 4,
                                                        jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match="labelled dataset"):
    gan.build_models(config, ImageSpec(image_shape=(8, 8, 1), num_classes=0))


def test_conditional_batchnorm_starts_as_batchnorm_and_learns_per_class_gains():
  config = cgan.get_config("tiny")
  config.model.g_conditional_norm = True
  state, step, mesh = init(config)
  generator, _ = gan.build_models(config, SPEC)
  z = jax.random.normal(jax.random.key(3), (4, config.latent_dim))
  plain_config = cgan.get_config("tiny")
  plain = gan.create_state(plain_config, jax.random.key(0), SPEC)
  plain_generator, _ = gan.build_models(plain_config, SPEC)
  # Gain 1 and bias 0 per class at the start: the same function as plain BatchNorm with the
  # same weights (the tables are extra parameters; everything else is shared).
  params = dict(state.g_params)
  for name, layer in dict(plain.g_params).items():
    if name.startswith("BatchNorm"):
      continue
    params[name] = layer
  labels = jnp.array([0, 1, 0, 1])
  out = generator.apply({"params": params, "batch_stats": state.g_batch_stats}, z, labels,
                        mutable=["batch_stats"])[0]
  reference = plain_generator.apply({"params": plain.g_params,
                                     "batch_stats": plain.g_batch_stats}, z, labels,
                                    mutable=["batch_stats"])[0]
  np.testing.assert_allclose(out, reference, atol=1e-5)
  new, _ = step(state, sharding.to_global(fake_batch(), sharding.batch_sharded(mesh)),
                jax.random.key(1))
  gains = [v for path, v in jax.tree_util.tree_leaves_with_path(new.g_params)
           if "gain" in jax.tree_util.keystr(path)]
  assert gains and all(not np.allclose(g, 1.0) for g in gains)  # Every layer's gains learn,
  assert any(not np.allclose(g[0], g[1]) for g in gains)  # and each class has its own.
  with pytest.raises(ValueError, match="conditional generator"):
    DCGANGenerator((8, 8, 1), (4, 4), conditional_norm=True).init(
        jax.random.key(0), jnp.zeros((1, 3)), train=False)


def test_the_average_samples_with_batchnorm_statistics_of_its_own_weights():
  config = cgan.get_config("tiny")
  config.model.g_conditional_norm = True
  state, step, mesh = init(config)
  batch = sharding.to_global(fake_batch(), sharding.batch_sharded(mesh))
  for i in range(3):
    state, _ = step(state, batch, jax.random.key(i))
  generator, _ = gan.build_models(config, SPEC)
  ema, live = state.ema_g_params, state.g_batch_stats
  own = gan.own_statistics(generator, ema, live, config.latent_dim, 2)
  # Measured, not carried over: the same whatever running statistics it is handed.
  chex.assert_trees_all_close(own, gan.own_statistics(
      generator, ema, jax.tree.map(jnp.zeros_like, live), config.latent_dim, 2), atol=1e-6)
  # They are the statistics of the average's own batch: inference mode with them equals
  # training mode (batch statistics) on the latents they were measured on.
  n = gan.OWN_STATISTICS_SAMPLES
  z, labels = jax.random.normal(jax.random.key(0), (n, config.latent_dim)), jnp.arange(n) % 2
  np.testing.assert_allclose(
      generator.apply({"params": ema, "batch_stats": own}, z, labels, train=False),
      generator.apply({"params": ema, "batch_stats": live}, z, labels, train=True,
                      mutable=["batch_stats"])[0], atol=1e-5)
  # The sampler uses them by default; "live" keeps the training G's running statistics.
  z4, labels4 = jax.random.normal(jax.random.key(5), (4, config.latent_dim)), jnp.arange(4) % 2
  for mode, stats in (("own", own), ("live", live)):
    config.ema_bn_statistics = mode
    np.testing.assert_allclose(
        gan.make_sampler(config, SPEC)(state, jax.random.key(5), 4),
        generator.apply({"params": ema, "batch_stats": stats}, z4, labels4, train=False),
        atol=1e-5)
  assert not np.allclose(*(jax.tree.leaves(s)[0] for s in (own, live)))
  config.ema_bn_statistics = "nope"
  with pytest.raises(ValueError, match="ema_bn_statistics"):
    gan.make_sampler(config, SPEC)


def test_dcgan_reaches_any_side_without_resizing_and_samples_in_inference_mode():
  assert upsampling_plan(28, 2) == (7, [2, 2])
  assert upsampling_plan(32, 3) == (4, [2, 2, 2])
  assert upsampling_plan(28, 3) == (7, [2, 2, 1])
  for shape in ((28, 28, 1), (32, 32, 3)):
    generator = DCGANGenerator(shape, widths=(8, 4, 4))
    z = jax.random.normal(jax.random.key(0), (8, 5))
    variables = generator.init(jax.random.key(1), z, train=False)
    assert generator.apply(variables, z, train=False).shape == (8, *shape)
    # Inference mode uses running statistics: a sample does not depend on its batch-mates.
    np.testing.assert_allclose(generator.apply(variables, z[:3], train=False),
                               generator.apply(variables, z, train=False)[:3], atol=1e-6)
    train_out, _ = generator.apply(variables, z[:3], mutable=["batch_stats"])
    assert not np.allclose(train_out, generator.apply(variables, z[:3], train=False))


@pytest.fixture
def user_loss_and_penalty(monkeypatch):
  """A user's own loss and penalty, registered by name outside the library (as in README),
  for this test only: the registries are restored afterwards."""
  monkeypatch.setattr(gan_losses, "GAN_LOSSES", dict(gan_losses.GAN_LOSSES))
  monkeypatch.setattr(gan_penalties, "D_REGULARIZERS", dict(gan_penalties.D_REGULARIZERS))
  gan_losses.register_gan_loss("test_least_squares", GANLoss(
      lambda r, f: jnp.mean((r - 1) ** 2) + jnp.mean(f ** 2),
      lambda f: jnp.mean((f - 1) ** 2)))
  gan_penalties.register_d_regularizer(
      "test_drift", lambda discriminate, real, fake, rng, config:
      config.drift * jnp.mean(discriminate(real) ** 2))


@pytest.mark.usefixtures("user_loss_and_penalty")
def test_user_registered_loss_and_penalty_are_picked_by_config():
  config = mlp_gan.get_config("tiny")
  config.loss, config.d_reg = "test_least_squares", "test_drift"
  config.drift = 0.5  # The user's own key for their penalty.
  state, step, mesh = init(config)
  batch = fake_batch()
  _, metrics = step(state, sharding.to_global(batch, sharding.batch_sharded(mesh)),
                    jax.random.key(1))
  _, discriminator = gan.build_models(config, SPEC)
  real_logits = discriminator.apply({"params": state.d_params}, batch["image"])
  np.testing.assert_allclose(metrics["d_reg_test_drift"], 0.5 * jnp.mean(real_logits**2),
                             rtol=1e-5)
