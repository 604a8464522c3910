"""Multi-model fusion for images: sample several trained runs as one generator.

`draw_fused` fills every requested sample slot from an even random mixture of the runs and
keeps a draw only if the strategy accepts it; rejected slots are drawn again, each round
from a freshly shuffled assignment of slots to runs. Strategies:
- "mixture": every draw is kept -- the runs pooled evenly;
- "vote": kept when at least `min_votes` of the judges (judges.py) agree the sample is the
  class it was drawn for (unconditional runs: agree on one class);
- "drs": discriminator rejection sampling (Azadi et al. 2019) with each run's own D,
  calibrated on a burn-in draw of that run.
The report says what the keeping cost: draws per kept sample, per run and in all, burn-in
included, and the wall time.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from aigc_jax.errors import InvalidInputError
from aigc_jax.quality.judges import judge_probabilities
from aigc_jax.quality.sample_filters import drs_accept, drs_scores, vote_accept
from aigc_jax.train.family import is_conditional
from aigc_jax.train.gan import make_critic
from aigc_jax.train.restore import RestoredRun, generate_images, requested_labels
from aigc_jax.train.sharding import fetch

STRATEGIES = ("mixture", "vote", "drs")


@dataclasses.dataclass(frozen=True)
class FusionOptions:
  """How `draw_fused` fuses; the fusion flags of experiments.sample."""

  strategy: str = "mixture"
  min_votes: int = 3  # vote: judges that must agree.
  confident: float = 0.5  # vote: the probability with which a judge gives its vote.
  drs_percentile: float = 95.0  # drs: gamma is this percentile of F on the burn-in draw.
  drs_burn_in: int = 2_000  # drs: draws per run that set its max logit and gamma.
  max_draws_per_sample: int = 100  # Give up below 1 % acceptance.
  batch_size: int = 500  # Images per jitted sampler call.


def check_compatible(runs: list[RestoredRun], workdirs: list[str]) -> None:
  """All runs must draw the same kind of image: dataset, shape and conditioning."""
  first = runs[0]
  for run, workdir in zip(runs[1:], workdirs[1:]):
    mine = (run.config.data.name, getattr(run.spec, "image_shape", None),
            is_conditional(run.config))
    theirs = (first.config.data.name, getattr(first.spec, "image_shape", None),
              is_conditional(first.config))
    if mine != theirs:
      raise InvalidInputError(
          f"Cannot fuse {workdir} (dataset, image shape, conditional: {mine}) with "
          f"{workdirs[0]} ({theirs}); fuse runs that draw the same kind of image.")


_DRAW, _BURN_IN = 0, 1  # Seed streams.


def draw_seed(seed: int, *path: int) -> int:
  """An independent sampler seed for each path of non-negative ints: (stream, round, run)."""
  return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


def _critic_logits(critic, run: RestoredRun, images: np.ndarray, labels, batch_size: int):
  """D's logits for samples in [0, 1], in batches padded to one size (one compilation)."""
  logits = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    padding = batch_size - len(chunk)
    padded = np.pad(chunk, ((0, padding),) + ((0, 0),) * (chunk.ndim - 1)) * 2.0 - 1.0
    chunk_labels = (None if labels is None
                    else np.pad(labels[start:start + batch_size], (0, padding)))
    logits.append(fetch(critic(run.state, padded, chunk_labels))[:len(chunk)])
  return np.concatenate(logits).astype(np.float64)


def _drs_acceptor(runs, workdirs, options: FusionOptions, seed: int, log):
  """accept(run_index, images, labels, rng) with each run's D, after its burn-in."""
  for run, workdir in zip(runs, workdirs):
    if run.config.family != "gan":
      raise InvalidInputError(f"--fusion=drs needs each run's discriminator; {workdir} is a "
                              f"{run.config.family} run. Use --fusion=vote or mixture.")
  critics = [jax.jit(make_critic(run.config, run.spec)) for run in runs]
  max_logit, gamma = [], []
  for index, (run, critic) in enumerate(zip(runs, critics)):
    labels = requested_labels(run, options.drs_burn_in)
    burn_in = generate_images(run, options.drs_burn_in, seed=draw_seed(seed, _BURN_IN, index),
                              batch_size=options.batch_size, labels=labels)
    logits = _critic_logits(critic, run, burn_in, labels, options.batch_size)
    max_logit.append(logits.max())
    gamma.append(float(np.percentile(drs_scores(logits, logits.max()), options.drs_percentile)))
    log(f"DRS burn-in of {workdirs[index]}: {len(logits)} draws, max logit "
        f"{max_logit[-1]:.3f}, gamma {gamma[-1]:.3f}")

  def accept(index, images, labels, rng):
    logits = _critic_logits(critics[index], runs[index], images, labels, options.batch_size)
    max_logit[index] = max(max_logit[index], logits.max())  # The running maximum.
    return drs_accept(logits, max_logit[index], gamma[index], rng.random(len(logits)))

  return accept, options.drs_burn_in * len(runs)


def _acceptor(runs, workdirs, options: FusionOptions, judges, seed: int, log):
  """accept(run_index, images, labels, rng) -> bool mask, and the burn-in draws it cost."""
  if options.strategy == "mixture":
    return (lambda index, images, labels, rng: np.ones(len(images), bool)), 0
  if options.strategy == "vote":
    if not judges:
      raise InvalidInputError("--fusion=vote needs judges (--num_judges >= 1).")
    return (lambda index, images, labels, rng: vote_accept(
        judge_probabilities(judges, images), options.min_votes, options.confident,
        labels)), 0
  if options.strategy == "drs":
    return _drs_acceptor(runs, workdirs, options, seed, log)
  raise InvalidInputError(f"Unknown fusion strategy '{options.strategy}'; choose from "
                          f"{STRATEGIES}.")


def match_to_slots(slot_keys: np.ndarray, candidate_keys: np.ndarray,
                   accepted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Pairs open slots with accepted candidates of the same key (label); each is used at
  most once. Returns (slot positions, candidate positions)."""
  slot_positions, candidate_positions = [], []
  for key in np.unique(candidate_keys[accepted]):
    open_slots = np.flatnonzero(slot_keys == key)
    fits = np.flatnonzero(accepted & (candidate_keys == key))
    count = min(len(open_slots), len(fits))
    slot_positions.append(open_slots[:count])
    candidate_positions.append(fits[:count])
  if not slot_positions:
    return np.zeros(0, int), np.zeros(0, int)
  return np.concatenate(slot_positions), np.concatenate(candidate_positions)


def draw_fused(runs: list[RestoredRun], workdirs: list[str], num_samples: int,
               labels: np.ndarray | None, options: FusionOptions = FusionOptions(),
               judges: list | None = None, seed: int = 0, log=print
               ) -> tuple[np.ndarray, dict]:
  """`num_samples` images in [0, 1] (for `labels`, if given) drawn from `runs` fused by
  `options.strategy`, and a report of what they cost.

  Each round draws, for every open slot, as many candidates as the acceptance so far says
  one kept sample costs, so a filter that keeps 1 in 5 finishes in a few rounds, not
  hundreds; every candidate counts as drawn.
  """
  check_compatible(runs, workdirs)
  start = time.perf_counter()
  accept, burn_in = _acceptor(runs, workdirs, options, judges, seed, log)
  rng = np.random.default_rng(seed)
  keys = np.zeros(num_samples, int) if labels is None else np.asarray(labels)
  images, source = None, np.full(num_samples, -1)
  drawn, kept = np.zeros(len(runs), int), np.zeros(len(runs), int)
  pending, round_index = np.arange(num_samples), 0
  while len(pending):
    if drawn.sum() > options.max_draws_per_sample * num_samples:
      raise InvalidInputError(
          f"--fusion={options.strategy} kept {num_samples - len(pending)} of {drawn.sum()} "
          f"draws (under 1 in {options.max_draws_per_sample}); loosen it (fewer --min_votes, "
          "a lower --drs_percentile) or use better runs.")
    copies = 1 if not kept.sum() else int(np.ceil(drawn.sum() / kept.sum()))
    owner = rng.permutation(len(pending)) % len(runs)  # An even, label-blind assignment.
    for index, run in enumerate(runs):
      slots = pending[owner == index]
      if not len(slots):
        continue
      candidates = np.repeat(slots, copies)
      candidate_labels = None if labels is None else labels[candidates]
      batch = generate_images(run, len(candidates),
                              seed=draw_seed(seed, _DRAW, round_index, index),
                              batch_size=options.batch_size, labels=candidate_labels)
      accepted = accept(index, batch, candidate_labels, rng)
      filled, chosen = match_to_slots(keys[slots], keys[candidates], accepted)
      if images is None:
        images = np.empty((num_samples, *batch.shape[1:]), np.float32)
      images[slots[filled]] = batch[chosen]
      source[slots[filled]] = index
      drawn[index] += len(candidates)
      kept[index] += len(filled)
    pending = np.flatnonzero(source < 0)
    round_index += 1
    log(f"fusion round {round_index}: {num_samples - len(pending)}/{num_samples} kept, "
        f"{drawn.sum()} drawn")
  report = {
      "strategy": options.strategy, "options": dataclasses.asdict(options),
      "num_samples": num_samples, "drawn": int(drawn.sum()), "burn_in_draws": burn_in,
      "draws_per_kept": float((drawn.sum() + burn_in) / num_samples),
      "acceptance_rate": float(num_samples / drawn.sum()), "rounds": round_index,
      "seconds": time.perf_counter() - start,
      "runs": [{"workdir": w, "step": r.step, "drawn": int(d), "kept": int(k),
                "kept_share": float(k / num_samples)}
               for w, r, d, k in zip(workdirs, runs, drawn, kept)]}
  if options.strategy == "vote":
    report["judges"] = [card for _, _, card in judges]
  return images, report
