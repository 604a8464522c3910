"""The training loop every model family shares: data, sharding, logs, samples, checkpoints.

`train_and_evaluate(config, workdir)` is what the `experiments.train` entry point and the
tests call. Re-running it on the same workdir resumes from the latest checkpoint; the run
then continues exactly as an uninterrupted one would (same batches, same randomness).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
from absl import logging

from aigc_jax.data.batching import stack_batches
from aigc_jax.data.images import ImageData, model_inputs
from aigc_jax.data.sources import config_split
from aigc_jax.data.text import TextData
from aigc_jax.data.training_split import training_split
from aigc_jax.errors import InvalidInputError
from aigc_jax.train import dp, sharding
from aigc_jax.train.checkpoint import Checkpointer, WorkdirMismatchError, with_shardings
from aigc_jax.train.config import validate, with_defaults
from aigc_jax.train.evaluation import make_split_evaluator
from aigc_jax.train.family import Family, Spec, TrainStep, get_family
from aigc_jax.train.metric_writer import MetricWriter
from aigc_jax.train.parallel import make_runner
from aigc_jax.train.preemption import preemption_notice
from aigc_jax.train.restore import warm_start
from aigc_jax.train.rng import stream
from aigc_jax.train.sample_output import grid_columns, save_samples
from aigc_jax.train.sharding import fetch
from aigc_jax.train.step_logger import StepLogger
from aigc_jax.train.watchdog import StallWatchdog


def checkpoint_meta(config: ml_collections.ConfigDict, spec: Spec) -> dict:
  """JSON saved beside each state: enough to rebuild the model without the config file.

  The data position needs no entry: batch s is a function of (seed, s), see data/images.py
  and data/text.py.
  """
  return {"config": json.loads(config.to_json_best_effort()), "data_spec": spec.to_json()}


# Settings that make a run what it is: resuming under another value would silently
# continue a different experiment. The data keys decide what the model learns from.
RUN_IDENTITY = ("family", "model", "data.name", "data.split", "data.image_folder",
                "data.text_file", "data.image_size", "data.channels", "data.eval_fraction",
                "data.split_seed", "data.corrupt", "data.corrupt_seed", "data.ood_source",
                "data.exclude", "data.subset", "data.subset_seed", "dp")


def _lookup(config: dict, dotted: str):
  for part in dotted.split("."):
    config = config.get(part) if isinstance(config, dict) else None
  return config


def check_same_model(config: ml_collections.ConfigDict, meta: dict, path: str) -> None:
  """Refuses to resume a checkpoint written for another model or other training data.

  A key the checkpoint predates counts as its default, so older runs still resume."""
  saved = json.loads(with_defaults(meta["config"]).to_json_best_effort())
  wanted = json.loads(config.to_json_best_effort())
  for key in RUN_IDENTITY:
    if _lookup(saved, key) != _lookup(wanted, key):
      raise WorkdirMismatchError(
          f"The checkpoint {path} was written with {key}={_lookup(saved, key)!r}, but the "
          f"config asks for {key}={_lookup(wanted, key)!r}. Use the config that wrote "
          "it, or a fresh --workdir (with --config.init_from=<this run> to start from "
          "its parameters).")


def _truncate_metrics(workdir: str, last_step: int) -> None:
  """Drops log lines past the checkpoint a run resumes from (they will be redone), and a
  torn last line (a crash or a full disk mid-write), with a warning."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  for number, line in enumerate(lines, 1):
    try:
      step = json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
      if number < len(lines):
        raise InvalidInputError(f"{path} line {number} is not a metrics record ({line[:80]!r}); "
                                "repair or delete that line, then rerun.") from None
      logging.warning("Dropped the torn last line of %s (%r): a crash or full disk cut "
                      "it short.", path, line[:80])
      continue
    if step <= last_step:
      kept.append(line if line.endswith("\n") else line + "\n")
  with open(path, "w") as f:
    f.writelines(kept)


def chunk_sizes(start_step: int, num_steps: int, steps_per_call: int) -> list[int]:
  """Steps per jitted call from start_step to num_steps; only the last may be shorter."""
  full, rest = divmod(num_steps - start_step, steps_per_call)
  return [steps_per_call] * full + ([rest] if rest else [])


def make_multi_step(train_step: TrainStep) -> Callable:
  """(state, batches (k, B, ...), rng) -> (state, metrics (k,)): k steps in one call, on
  batches as the model takes them (`model_inputs`).

  k > 1 runs the steps in a `lax.scan`. k = 1 calls the step directly: XLA:CPU runs
  convolutions inside a loop body about 7x slower than outside one (measured on the conv
  VAE: 1.6 s against 0.21 s per step), so convolutional configs keep steps_per_call = 1.
  """

  def multi_step(state, batches, rng):
    batches = model_inputs(batches)
    if jax.tree.leaves(batches)[0].shape[0] == 1:
      state, metrics = train_step(state, jax.tree.map(lambda x: x[0], batches), rng)
      return state, jax.tree.map(lambda m: m[None], metrics)
    return jax.lax.scan(lambda s, batch: train_step(s, batch, rng), state, batches)

  return multi_step


def crossed(every: int, before: int, after: int) -> bool:
  """Whether a multiple of `every` lies in (before, after]; never when every == 0."""
  return every > 0 and after // every > before // every


def initial_state(config: ml_collections.ConfigDict, checkpointer: Checkpointer,
                  create_state: Callable, init_rng: jax.Array, abstract_state: Any
                  ) -> tuple[int, Any]:
  """(step, state) of the newest readable checkpoint, else (0, fresh) -- warm-started from
  `config.init_from` when set --, placed on the shardings of `abstract_state` (whatever
  the topology that wrote the checkpoint)."""

  def restore(step):
    check_same_model(config, checkpointer.restore_meta(step), checkpointer.path(step))
    checkpointer.check_same_layout(step, abstract_state)
    return checkpointer.restore_state(step, abstract_state)

  restored = checkpointer.restore_newest(restore)
  if restored is None:
    placement = jax.tree.map(lambda leaf: leaf.sharding, abstract_state)
    state = jax.jit(create_state, out_shardings=placement)(init_rng)
    if config.init_from:
      state = warm_start(state, config.init_from)
      logging.info("Warm start: parameters from %s; optimiser state and step fresh.",
                   config.init_from)
    return 0, state
  logging.info("Resumed from %s at step %d.", checkpointer.path(restored[0]), restored[0])
  return restored


def private_config(config: ml_collections.ConfigDict, data: ImageData | TextData,
                   multiple: int) -> tuple[ml_collections.ConfigDict, dp.DpPlan]:
  """The config with the noise multiplier the run will use (calibrated to dp.epsilon when
  that is the target), and the run's privacy plan, logged."""
  dp.check_private_config(config)
  num_items = data.num_windows() if isinstance(data, TextData) else len(data.images)
  plan = dp.make_plan(config, num_items, multiple)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.dp.noise_multiplier = plan.noise_multiplier
  logging.info("Private training (DP-SGD): %d items, each in a step's batch with "
               "probability %.5f (Poisson; at most %d per batch), clipped to L2 %g, noise "
               "multiplier %.4f: epsilon %.3f at delta %g after %d steps.", plan.num_items,
               plan.sampling_rate, plan.capacity, plan.l2_clip, plan.noise_multiplier,
               dp.epsilon_spent(plan, plan.num_steps), plan.delta, plan.num_steps)
  return config, plan


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir` up to `config.num_steps`; returns the last logged scalars."""
  validate(config)
  family: Family = get_family(config.family)
  mesh = sharding.make_mesh(fsdp=config.fsdp)
  sharding.check_batch_divisible(config.batch_size, mesh)
  repl = sharding.replicated(mesh)
  is_chief = jax.process_index() == 0

  data = training_split(config, config_split(config, config.data.split),
                        workdir if is_chief else None, log=logging.info)
  spec = data.spec
  plan = None
  if dp.is_private(config):
    config, plan = private_config(config, data, mesh.size * config.grad_accum_steps)
  init_rng, train_rng, grid_rng, eval_rng = (stream(jax.random.key(config.seed), name)
                                             for name in ("init", "train", "grid", "eval"))
  create_state = lambda rng: family.create_state(config, rng, spec)

  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                              max_to_keep=config.keep_checkpoints)
  writer = None
  try:  # Whatever fails from here on, pending saves finish and files close.
    shapes = jax.eval_shape(create_state, init_rng)
    state_sharding = sharding.state_shardings(shapes, mesh)
    start_step, state = initial_state(config, checkpointer, create_state, init_rng,
                                      with_shardings(shapes, state_sharding))
    meta = checkpoint_meta(config, spec)
    if is_chief:
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(meta, f, indent=2)
      _truncate_metrics(workdir, start_step)

    chunks = chunk_sizes(start_step, config.num_steps, config.steps_per_call)
    runner = make_runner(config, make_multi_step(family.make_train_step(config, spec)), mesh,
                         state_sharding)
    state = runner.to_running(state)
    sample = jax.jit(family.make_sampler(config, spec), static_argnums=2, out_shardings=repl)
    local_batches = data.train_batches(
        global_batch=plan.capacity if plan else config.batch_size, seed=config.seed,
        start_step=start_step, process_index=jax.process_index(),
        process_count=jax.process_count(), balance=config.data.balance,
        sampling_rate=plan.sampling_rate if plan else 0.0)
    batches = runner.device_batches(stack_batches(local_batches, iter(chunks)))
    evaluate = None
    if family.make_eval_step is not None and config.eval_every:
      evaluate = make_split_evaluator(
          family.make_eval_step(config, spec), config_split(config, config.data.eval_split),
          batch_size=config.eval_batch_size, mesh=mesh, rng=eval_rng)

    writer = MetricWriter(workdir, enabled=is_chief)
    logger = StepLogger(writer, config.num_steps, checkpointer)
    logging.info("Training %s/%s on %s (%s) from step %d to %d on %d device(s) with %s, "
                 "%d step(s) per call.", config.family, config.model.arch, config.data.name,
                 data.describe(), start_step, config.num_steps, mesh.size,
                 type(runner).__name__, config.steps_per_call)
    step = start_step
    stall_timeout = config.stall_timeout_s if jax.process_count() > 1 else 0
    where = lambda: f"process {jax.process_index()} of {jax.process_count()}"
    with preemption_notice() as preemption, StallWatchdog(stall_timeout, where) as watchdog:
      for call_index, size in enumerate(chunks):
        before, step = step, step + size
        state, metrics = runner.step(state, next(batches), train_rng)
        watchdog.beat(step)
        logger.add(before + 1, runner.metrics(metrics))
        last = step == config.num_steps
        if crossed(config.log_every, before, step) or last:
          logger.flush()
        if evaluate is not None and (crossed(config.eval_every, before, step) or last):
          eval_scalars = {f"eval/{name}": value
                          for name, value in evaluate(runner.to_canonical(state)).items()}
          writer.write_scalars(step, eval_scalars)
          logger.last_scalars.update(eval_scalars)
          logging.info("step %d eval on %s: %s", step, config.data.eval_split,
                       " ".join(f"{k}={v:.4g}" for k, v in eval_scalars.items()))
        if crossed(config.sample_every, before, step) or last:
          samples = fetch(sample(runner.to_canonical(state), grid_rng,
                                 config.num_grid_samples))
          if is_chief:
            save_samples(spec, samples, workdir, step, writer,
                         columns=grid_columns(config, spec))
        preempted = preemption.reached(call_index)
        if crossed(config.checkpoint_every, before, step) or last or preempted:
          logger.flush()  # Never save a state whose metrics were not checked finite.
          if plan is not None:
            spent = dp.epsilon_spent(plan, step)
            writer.write_scalars(step, {"privacy/epsilon": spent})
            logger.last_scalars["privacy/epsilon"] = spent
            logging.info("step %d: privacy spent epsilon=%.3f at delta=%g.", step, spent,
                         plan.delta)
          checkpointer.save(step, runner.to_canonical(state), meta)
        if preempted:
          logging.warning("SIGTERM received: saved step %d to %s; rerun to resume.", step,
                          checkpointer.path(step))
          break
  finally:
    checkpointer.wait()
    checkpointer.close()
    if writer is not None:
      writer.close()
  return logger.last_scalars
