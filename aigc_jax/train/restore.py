"""Rebuilds a trained model from its workdir alone, for sampling and evaluation."""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from aigc_jax.data.clusters import draw_fine
from aigc_jax.data.image_grid import to_unit_range
from aigc_jax.data.sources import spec_from_json
from aigc_jax.data.text import TextSpec
from aigc_jax.data.training_split import class_shares, clusters_per_class
from aigc_jax.errors import InvalidInputError, MissingInputError
from aigc_jax.models.decoding import continuations, generate_ensemble
from aigc_jax.train import sharding
from aigc_jax.train.checkpoint import Checkpointer, abstract_like
from aigc_jax.train.config import with_defaults
from aigc_jax.train.family import Family, Spec, balanced_labels, get_family, is_conditional
from aigc_jax.train.rng import stream
from aigc_jax.train.sharding import fetch


@dataclasses.dataclass
class RestoredRun:
  """A trained run as saved: its config, data spec, family and state (replicated)."""

  config: ml_collections.ConfigDict
  spec: Spec
  family: Family
  state: Any
  step: int

  @property
  def model(self) -> Any:
    """The float32 module(s) the state's parameters drive (`Family.build_model`)."""
    if self.family.build_model is None:
      raise ValueError(f"Family '{self.config.family}' defines no build_model; this "
                       "evaluation needs its model.")
    return self.family.build_model(self.config, self.spec)

  @functools.cached_property
  def label_shares(self) -> np.ndarray:
    """Each label's share of the training split as the model saw it (classes, or the
    k-means clusters it trained on instead), computed once per run: clustering the split
    again for every draw would repeat seconds of k-means."""
    return class_shares(self.config)

  @functools.cached_property
  def sampler(self):
    """The family's sampler, jitted once per run (so repeated draws reuse its compilation);
    sampler(state, rng, num_samples, labels), num_samples static."""
    return jax.jit(self.family.make_sampler(self.config, self.spec), static_argnums=2)


def restore_run(workdir: str, step: int | None = None) -> RestoredRun:
  """Loads the config saved with the checkpoint, then the state, replicated on all devices."""
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), create=False)

  def restore(step: int) -> tuple[ml_collections.ConfigDict, Spec, Family, Any]:
    meta = checkpointer.restore_meta(step)
    config = with_defaults(meta["config"])
    spec = spec_from_json(meta["data_spec"])
    family = get_family(config.family)
    repl = sharding.replicated(sharding.make_mesh())
    init_rng = stream(jax.random.key(config.seed), "init")
    abstract = abstract_like(lambda rng: family.create_state(config, rng, spec), init_rng,
                             sharding=repl)
    return config, spec, family, checkpointer.restore_state(step, abstract)

  try:
    restored = (checkpointer.restore_newest(restore, set_aside=False) if step is None
                else (step, restore(step)))
  finally:
    checkpointer.close()
  if restored is None:
    raise MissingInputError(f"No checkpoint under {checkpointer.directory}; train first "
                            "with python -m experiments.train --workdir=" + workdir)
  step, (config, spec, family, state) = restored
  return RestoredRun(config=config, spec=spec, family=family, state=state, step=step)


def class_count(run: RestoredRun) -> int:
  """How many classes a conditional run can be asked for: its model's labels, less the
  finer clusters it conditions on in their place (data.clusters_per_class)."""
  return run.spec.num_classes // max(clusters_per_class(run.config), 1)


def labels_in_shares(num_samples: int, shares: np.ndarray) -> np.ndarray:
  """int32 (num_samples,): each class round(share * num_samples) times (largest
  remainders fill the rest), in a fixed shuffled order so every batch mixes classes."""
  exact = np.asarray(shares, np.float64) * num_samples
  counts = np.floor(exact).astype(int)
  counts[np.argsort(counts - exact)[:num_samples - counts.sum()]] += 1
  labels = np.repeat(np.arange(len(shares)), counts)
  return np.random.default_rng(0).permutation(labels).astype(np.int32)


def requested_labels(run: RestoredRun, num_samples: int, label: int | None = None,
                     balanced: bool = False, prior: str | None = None) -> np.ndarray | None:
  """The labels to draw: all `label` if given, balanced if asked, else as `prior` (default
  the run's `sample_labels`) says: 'uniform', or 'data' for the training split's class
  shares. None for unconditional runs."""
  if not is_conditional(run.config):
    if label is not None or balanced:
      raise InvalidInputError(
          f"This {run.config.family} run is unconditional; it cannot draw given classes. "
          "Train a conditional one (e.g. experiments/configs/cgan.py).")
    return None
  num_classes = class_count(run)
  if label is not None and not 0 <= label < num_classes:
    raise InvalidInputError(f"Label {label} is out of range: this run has classes "
                            f"0..{num_classes - 1}.")
  if label is not None:
    return np.full((num_samples,), label, np.int32)
  if not balanced and (prior or run.config.sample_labels) == "data":
    # A run on fine labels (class * per_class + cluster) is asked for classes: each
    # class's share is the sum of its clusters' shares.
    shares = run.label_shares.reshape(num_classes, -1).sum(axis=1)
    return labels_in_shares(num_samples, shares)
  return np.asarray(balanced_labels(num_samples, num_classes), np.int32)


def generate_images(run: RestoredRun, num_samples: int, seed: int = 0,
                    batch_size: int = 500, labels: np.ndarray | None = None) -> np.ndarray:
  """float32 samples in [0, 1], (num_samples, H, W, C), drawn in fixed-size jitted batches.

  Every batch has the same size (the last is trimmed afterwards), so the sampler compiles
  once; batch i uses key fold_in(seed_key, i), so a sample does not depend on num_samples.
  `labels` (num_samples,) asks a conditional model for those classes (for a model on fine
  labels, each becomes one of its class's clusters, drawn from `seed`).
  """
  sample = run.sampler
  key = jax.random.key(seed)
  num_batches = -(-num_samples // batch_size)
  if labels is not None and clusters_per_class(run.config):
    labels = draw_fine(labels, run.label_shares, clusters_per_class(run.config), seed)
  if labels is not None:
    labels = np.resize(np.asarray(labels, np.int32), num_batches * batch_size)
  batches = [fetch(sample(run.state, jax.random.fold_in(key, i), batch_size,
                          None if labels is None else labels[i * batch_size:(i + 1) * batch_size]))
             for i in range(num_batches)]
  return to_unit_range(np.concatenate(batches)[:num_samples])


# The models (hashable Flax modules) and the knobs that choose code paths are static, so
# repeated calls with the same settings reuse one compiled decoding loop.
_generate = jax.jit(generate_ensemble,
                    static_argnames=("models", "num_new", "top_k", "top_p", "combine"))


def generate_text(runs: RestoredRun | list[RestoredRun], prompts: list[str], num_chars: int, *,
                  seed: int = 0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  stop: str | None = None, combine: str = "mixture") -> list[str]:
  """Continues every prompt at once (one compiled decoding loop); returns continuations.

  Several runs decode as one ensemble, their next-character distributions combined by
  `combine` (decoding.combine_log_probs). A continuation ends before the first occurrence
  of `stop`, if given.
  """
  runs = [runs] if isinstance(runs, RestoredRun) else list(runs)
  if not all(isinstance(run.spec, TextSpec) for run in runs):
    raise InvalidInputError("This run models images; sample it with --num_samples/--output.")
  spec = runs[0].spec
  if any(run.spec != spec or run.config.block_size != runs[0].config.block_size
         for run in runs):
    raise InvalidInputError("Language-model runs decode together only with the same "
                            "vocabulary and block_size; these differ.")
  prompts = [p or "\n" for p in prompts]  # An empty prompt starts a fresh line.
  encoded = [spec.encode(p) for p in prompts]
  lengths = np.array([len(e) for e in encoded], np.int32)
  padded = np.zeros((len(prompts), lengths.max()), np.int32)
  for row, tokens in zip(padded, encoded):
    row[:len(tokens)] = tokens
  tokens = fetch(_generate(tuple(run.model for run in runs),
                           tuple(run.state.params for run in runs), padded, lengths,
                           jax.random.key(seed), num_new=num_chars, temperature=temperature,
                           top_k=top_k, top_p=top_p, combine=combine))
  texts = [spec.decode(row) for row in continuations(tokens, lengths, num_chars)]
  return [t.split(stop, 1)[0] if stop else t for t in texts]


def _is_trained_variable(field: str) -> bool:
  """State fields a warm start copies: parameters, EMA and BatchNorm statistics; not the
  step or any optimiser state."""
  return field != "step" and not field.endswith("opt_state")


def warm_start(fresh_state: Any, run_dir: str) -> Any:
  """`fresh_state` with the trained variables of `run_dir`'s newest checkpoint, placed on
  the fresh state's shardings. Fails naming the first variable whose shape differs."""
  source = restore_run(run_dir)
  if type(source.state) is not type(fresh_state):
    raise InvalidInputError(f"--config.init_from={run_dir} is a {source.config.family} run "
                            f"({type(source.state).__name__}); this run's state is "
                            f"{type(fresh_state).__name__}. Warm-start from a run of the same "
                            "family.")
  copied = {}
  for field in (f.name for f in dataclasses.fields(fresh_state)):
    if not _is_trained_variable(field):
      continue
    want, have = getattr(fresh_state, field), getattr(source.state, field)
    want_shapes = jax.tree_util.tree_flatten_with_path(want)[0]
    have_shapes = dict(jax.tree_util.tree_flatten_with_path(have)[0])
    for path, leaf in want_shapes:
      other = have_shapes.get(path)
      if other is None or other.shape != leaf.shape:
        name = f"{field}{jax.tree_util.keystr(path)}"
        found = "absent" if other is None else f"shape {other.shape}"
        raise InvalidInputError(
            f"--config.init_from={run_dir} (step {source.step}) does not fit this model: "
            f"{name} is {found} there and {leaf.shape} here. Warm-start from a run with "
            "the same model config.")
    extra = sorted(set(have_shapes) - {path for path, _ in want_shapes})
    if extra:
      raise InvalidInputError(f"--config.init_from={run_dir} has {field}"
                              f"{jax.tree_util.keystr(extra[0])}, which this model lacks. "
                              "Warm-start from a run with the same model config.")
    copied[field] = jax.device_put(have, jax.tree.map(lambda x: x.sharding, want))
  return fresh_state.replace(**copied)
