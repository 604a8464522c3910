"""Character-level GPT: causality, cached decoding, sampling filters, text data, bits/char."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data.text import TextData, TextSpec
from aigc_jax.metrics.lm_ensemble import ensemble_bits_per_char
from aigc_jax.models.decoding import (combine_log_probs, continuations, filter_logits, generate,
                                      generate_ensemble)
from aigc_jax.train import lm, sharding
from aigc_jax.train.evaluation import make_split_evaluator
from experiments.configs import char_gpt

SPEC = TextSpec(vocab="\n !abcdefghijklmnopqrstuvwxyz")


@pytest.fixture(scope="module")
def model_and_params():
  config = char_gpt.get_config("tiny")
  model = lm.build_model(config, SPEC)
  params = lm.create_state(config, jax.random.key(0), SPEC).params
  return config, model, params


def tokens(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).integers(0, SPEC.vocab_size, shape), jnp.int32)


def test_output_at_t_ignores_tokens_after_t(model_and_params):
  _, model, params = model_and_params
  x = tokens(0, (2, 16))
  changed = x.at[:, 9:].set((x[:, 9:] + 5) % SPEC.vocab_size)
  a, b = model.apply({"params": params}, x), model.apply({"params": params}, changed)
  np.testing.assert_allclose(a[:, :9], b[:, :9], rtol=1e-5, atol=1e-6)
  assert not np.allclose(a[:, 9:], b[:, 9:])


def test_attention_dropout_follows_its_key_and_is_off_at_evaluation(model_and_params):
  config, model, params = model_and_params
  noisy = model.clone(dropout=0.5)
  x = tokens(3, (2, config.block_size))
  run = lambda key: noisy.apply({"params": params}, x, train=True, rngs={"dropout": key})
  np.testing.assert_array_equal(run(jax.random.key(1)), run(jax.random.key(1)))
  assert not np.allclose(run(jax.random.key(1)), run(jax.random.key(2)))
  np.testing.assert_array_equal(noisy.apply({"params": params}, x),
                                model.apply({"params": params}, x))
  grads = jax.grad(lambda p: jnp.sum(noisy.apply({"params": p}, x, train=True,
                                                 rngs={"dropout": jax.random.key(1)})))(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_cached_decoding_gives_the_full_forward_logits(model_and_params):
  config, model, params = model_and_params
  x = tokens(1, (3, config.block_size))
  full = model.apply({"params": params}, x)
  cache = model.init(jax.random.key(0), x[:, :1], decode=True)["cache"]
  stepwise = []
  for t in range(config.block_size):
    logits, updated = model.apply({"params": params, "cache": cache}, x[:, t:t + 1],
                                  decode=True, positions=jnp.array([t]), mutable=["cache"])
    cache = updated["cache"]
    stepwise.append(logits[:, 0])
  np.testing.assert_allclose(jnp.stack(stepwise, axis=1), full, rtol=1e-4, atol=1e-5)


def test_generation_past_the_context_matches_a_windowed_greedy_reference(model_and_params):
  """Greedy decoding (top_k=1) through cache refills equals recomputing each window."""
  config, model, params = model_and_params
  block, keep, num_new = config.block_size, config.block_size // 2, 40
  prompts, lengths = tokens(2, (2, 5)), jnp.array([5, 3])
  out = generate(model, params, prompts, lengths, jax.random.key(0), num_new=num_new,
                 top_k=1)
  for row in range(2):
    seq = list(map(int, prompts[row, :lengths[row]]))
    start, filled = 0, 0
    for t in range(int(lengths[row]) - 1 + num_new):
      if filled == block:
        start, filled = t - keep, keep + 1
      else:
        filled += 1
      if t + 1 < len(seq):
        continue  # Still inside the prompt.
      context = jnp.asarray(seq[start:t + 1])[None]
      seq.append(int(jnp.argmax(model.apply({"params": params}, context)[0, -1])))
    assert continuations(out, lengths, num_new)[row] == seq[int(lengths[row]):]


def test_top_k_and_top_p_keep_the_right_tokens():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  kept = lambda f: np.isfinite(np.asarray(f))[0].tolist()
  assert kept(filter_logits(logits, top_k=2)) == [True, True, False, False]
  assert kept(filter_logits(logits, top_p=0.7)) == [True, True, False, False]
  assert kept(filter_logits(logits, top_p=0.4)) == [True, False, False, False]
  np.testing.assert_allclose(filter_logits(logits, temperature=2.0), logits / 2.0)


def text_data(n=200, block=8):
  rng = np.random.default_rng(0)
  return TextData(tokens=rng.integers(0, SPEC.vocab_size, n).astype(np.int32), spec=SPEC,
                  block_size=block)


def test_text_windows_are_deterministic_and_split_over_processes():
  data = text_data()
  whole = next(data.train_batches(global_batch=4, seed=3, start_step=5))["tokens"]
  again = next(data.train_batches(global_batch=4, seed=3, start_step=5))["tokens"]
  halves = [next(data.train_batches(global_batch=4, seed=3, start_step=5, process_index=p,
                                    process_count=2))["tokens"] for p in range(2)]
  assert whole.shape == (4, 9)
  np.testing.assert_array_equal(whole, again)
  np.testing.assert_array_equal(np.concatenate(halves), whole)
  for row in whole:  # Every row is a real window of the text.
    starts = [i for i in range(len(data.tokens) - 8) if np.array_equal(data.tokens[i:i + 9], row)]
    assert starts


def test_eval_windows_predict_every_character_once():
  data = text_data(n=37, block=8)
  targets = []
  for batch in data.eval_batches(global_batch=2):
    targets.extend(batch["tokens"][:, 1:][batch["mask"] == 1].tolist())
  assert targets == data.tokens[1:].tolist()


def test_held_out_bits_per_char_match_a_direct_computation(model_and_params):
  config, model, params = model_and_params
  data = text_data(n=61, block=config.block_size)
  evaluator = make_split_evaluator(lm.make_eval_step(config, SPEC), data,
                                   batch_size=config.eval_batch_size,
                                   mesh=sharding.make_mesh(jax.devices()[:1]),
                                   rng=jax.random.key(0))
  got = evaluator(lm.LMState(step=jnp.int32(0), params=params, opt_state=None))
  nats = []
  for start in range(0, 60, config.block_size):  # Windows overlapping by one character.
    window = jnp.asarray(data.tokens[start:start + config.block_size + 1])[None]
    log_probs = jax.nn.log_softmax(model.apply({"params": params}, window[:, :-1]))[0]
    nats.extend(-np.asarray(log_probs)[np.arange(window.shape[1] - 1), window[0, 1:]])
  assert len(nats) == 60
  np.testing.assert_allclose(got["loss"], np.mean(nats), rtol=1e-5)
  np.testing.assert_allclose(got["bits_per_char"], np.mean(nats) / np.log(2), rtol=1e-5)


def test_one_train_step_lowers_the_loss_on_a_repeated_batch(model_and_params):
  config, _, _ = model_and_params
  state = lm.create_state(config, jax.random.key(0), SPEC)
  step = jax.jit(lm.make_train_step(config, SPEC))
  batch = {"tokens": tokens(5, (4, config.block_size + 1))}
  losses = []
  for _ in range(4):
    state, metrics = step(state, batch, jax.random.key(1))
    losses.append(float(metrics["loss"]))
  assert int(state.step) == 4 and all(np.isfinite(losses))
  assert losses[-1] < losses[0]
  np.testing.assert_allclose(metrics["bits_per_char"], metrics["loss"] / np.log(2), rtol=1e-6)


def test_ensembles_combine_next_character_distributions():
  p = jnp.array([[0.7, 0.3, 0.0 + 1e-9], [0.2, 0.2, 0.6]])  # Two members, one row each.
  q = jnp.array([[0.1, 0.1, 0.8], [0.2, 0.2, 0.6]])
  logits = jnp.log(jnp.stack([p, q]))  # (K=2, B=2, V=3)
  mixture = jnp.exp(combine_log_probs(logits, "mixture"))
  np.testing.assert_allclose(mixture, (p + q) / 2, rtol=1e-5)
  product = jax.nn.softmax(combine_log_probs(logits, "product"))
  geometric = jnp.sqrt(p * q)
  np.testing.assert_allclose(product, geometric / geometric.sum(-1, keepdims=True), rtol=1e-4)
  # A token one member all but rules out: the mixture keeps it, the product vetoes it.
  assert mixture[0, 2] > 0.39 and product[0, 2] < 1e-3
  # Members that agree: both combinations are that distribution.
  np.testing.assert_allclose(product[1], p[1], rtol=1e-5)
  np.testing.assert_allclose(mixture[1], p[1], rtol=1e-5)
  with pytest.raises(ValueError, match="product"):
    combine_log_probs(logits, "vote")


def test_ensemble_decoding_and_bits_per_char(model_and_params):
  config, model, params = model_and_params
  other = lm.create_state(config, jax.random.key(1), SPEC).params
  prompts, lengths = tokens(3, (2, 5)), jnp.array([5, 3])
  single = generate(model, params, prompts, lengths, jax.random.key(4), num_new=20)
  for combine in ("mixture", "product"):  # A model with itself is the model.
    doubled = generate_ensemble((model, model), (params, params), prompts, lengths,
                                jax.random.key(4), num_new=20, combine=combine)
    np.testing.assert_array_equal(single, doubled)
  # An opinionated second member (sharp logits) moves what the pair writes.
  sharp = jax.tree.map(lambda x: 30.0 * x, other)
  mixed = generate_ensemble((model, model), (params, sharp), prompts, lengths,
                            jax.random.key(4), num_new=20, combine="product")
  assert mixed.shape == single.shape and not np.array_equal(mixed, single)
  data = text_data(n=61, block=config.block_size)
  alone = ensemble_bits_per_char((model,), (params,), data, "mixture")
  evaluator = make_split_evaluator(lm.make_eval_step(config, SPEC), data, batch_size=16,
                                   mesh=sharding.make_mesh(jax.devices()[:1]),
                                   rng=jax.random.key(0))
  want = evaluator(lm.LMState(step=jnp.int32(0), params=params, opt_state=None))
  assert alone == pytest.approx(float(want["bits_per_char"]), rel=1e-5)
  assert ensemble_bits_per_char((model, model), (params, params), data,
                                "product") == pytest.approx(alone, rel=1e-5)
  # The mixture's log-loss is at most the mean of its members' (log is concave).
  second = ensemble_bits_per_char((model,), (other,), data, "mixture")
  both = ensemble_bits_per_char((model, model), (params, other), data, "mixture")
  assert both <= (alone + second) / 2 + 1e-6
