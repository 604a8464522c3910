"""Orbax checkpoints of a run: the state pytree plus JSON metadata (config, data spec).

Saves are asynchronous -- the device-to-host copy happens in `save`, the file writes in
the background -- so training continues while a checkpoint is written. Orbax writes each
step into a temporary folder and renames it when complete, so a run killed mid-save
leaves the previous checkpoint as the latest one. A checkpoint damaged later (a truncated
or overwritten file, a lost disk block) is found when it fails to read back, or when what
it reads back is not what was saved: every save records a checksum of each array, and a
restore that does not reproduce them, or holds a non-finite value, counts as unreadable
(`restore_newest` then falls back to the previous checkpoint).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from aigc_jax.errors import MissingInputError, UserError
from aigc_jax.train.sharding import fetch

T = TypeVar("T")


class WorkdirMismatchError(UserError, ValueError):
  """The workdir holds checkpoints of a different family or architecture."""


class NoReadableCheckpointError(UserError, RuntimeError):
  """Every checkpoint of a run failed to read back."""


class DamagedCheckpointError(RuntimeError):
  """A checkpoint read back, but not as it was saved (checksums, non-finite values, or
  missing metadata)."""


class NonFiniteStateError(UserError, FloatingPointError):
  """The train state holds NaN or inf; it is never saved."""


# Odd multiplier of the position weights in `array_checksums` (Knuth's multiplicative hash):
# a value moved to another position changes the sum, not only a changed value.
_POSITION_MULTIPLIER = 2654435761


def _leaf_checksum(x: jax.Array) -> jax.Array:
  """A uint32 sum of the array's bit patterns weighted by position, wrapping on overflow:
  integer sums are exact in any order, so it does not depend on sharding or devices."""
  x = jnp.ravel(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  bits = jax.lax.bitcast_convert_type(
      x, {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize])
  bits = jnp.ravel(bits).astype(jnp.uint32)
  weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(_POSITION_MULTIPLIER) + 1
  return jnp.sum(bits * weights, dtype=jnp.uint32)


@jax.jit
def _checksums_and_finite(state: Any) -> tuple[Any, jax.Array]:
  finite = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return (jax.tree.map(_leaf_checksum, state),
          jnp.all(jnp.stack(finite)) if finite else jnp.bool_(True))


def array_checksums(state: Any) -> tuple[dict[str, int], bool]:
  """({array path: checksum}, whether every float array is finite) of a state."""
  checksums, finite = fetch(_checksums_and_finite(state))
  return ({path: int(c) for path, c in zip(_paths(checksums), jax.tree.leaves(checksums))},
          bool(finite))


class Checkpointer:
  """Keeps the latest `max_to_keep` checkpoints of one run under `directory`."""

  def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True,
               create: bool = True):
    self.directory = os.path.abspath(directory)
    if not create and not os.path.isdir(self.directory):
      raise MissingInputError(f"No checkpoints at {self.directory}: the run folder does not "
                              "exist or was never trained. Train it first with "
                              "python -m experiments.train.")
    self._manager = ocp.CheckpointManager(
        self.directory,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=create,
            enable_async_checkpointing=async_save))
    # The newest step this process has seen intact: restored and verified, or saved
    # after a finiteness check. Error messages name only this one as good.
    self.verified_step: int | None = None

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def path(self, step: int | None) -> str | None:
    return None if step is None else os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Saves `state` with `meta` and the state's checksums; a non-finite state is refused."""
    checksums, finite = array_checksums(state)
    if not finite:
      raise NonFiniteStateError(
          f"The state at step {step} holds NaN or inf; it was not saved. "
          + self.last_good_description())
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        meta=ocp.args.JsonSave({**meta, "checksums": checksums})), force=True)
    self.verified_step = step

  def last_good_description(self) -> str:
    """Where a run can resume from, naming only a checkpoint known to be intact."""
    if self.verified_step is None:
      return "No checkpoint of this run has been verified yet."
    return (f"The last good checkpoint is {self.path(self.verified_step)} (step "
            f"{self.verified_step}); rerunning the command resumes from it.")

  def restore_meta(self, step: int) -> dict:
    return self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def check_same_layout(self, step: int, abstract_state: Any) -> None:
    """Refuses a checkpoint whose arrays (paths, shapes) differ from `abstract_state`'s.

    A config change that alters the state -- another optimiser, model size or
    `grad_accum_steps` -- is a config problem to name, not damage to skip.
    """
    metadata = self._manager.item_metadata(step)["state"]
    if not metadata:
      raise DamagedCheckpointError(f"{self.path(step)} has no readable array metadata "
                                   "(state/_METADATA missing or empty).")
    saved = _shapes_by_path(metadata)
    wanted = _shapes_by_path(abstract_state)
    if saved == wanted:
      return
    differences = ([f"{p} only in the checkpoint" for p in sorted(saved.keys() - wanted.keys())]
                   + [f"{p} only in this config" for p in sorted(wanted.keys() - saved.keys())]
                   + [f"{p} is {saved[p]} there, {wanted[p]} here"
                      for p in sorted(saved.keys() & wanted.keys()) if saved[p] != wanted[p]])
    raise WorkdirMismatchError(
        f"The checkpoint {self.path(step)} holds a state laid out differently from what this "
        f"config builds ({'; '.join(differences[:3])}{'; ...' if len(differences) > 3 else ''}"
        "). Use a fresh --workdir, or the config that wrote this one.")

  def restore_state(self, step: int, abstract_state: Any) -> Any:
    """Restores onto the shardings in `abstract_state` (any device count), verified
    against the checksums saved with it (checkpoints older than checksums: finiteness
    only)."""
    state = self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))["state"]
    checksums, finite = array_checksums(state)
    if not finite:
      raise DamagedCheckpointError(f"{self.path(step)} holds NaN or inf values.")
    saved = self.restore_meta(step).get("checksums")
    if saved is not None and saved != checksums:
      differing = sorted(p for p in saved if saved[p] != checksums.get(p))
      raise DamagedCheckpointError(
          f"{self.path(step)} reads back different arrays from those saved: checksums "
          f"differ for {', '.join(differing[:3])}{', ...' if len(differing) > 3 else ''}.")
    self.verified_step = step
    return state

  def restore_newest(self, restore: Callable[[int], T], *, set_aside: bool = True
                     ) -> tuple[int, T] | None:
    """(step, restore(step)) for the newest checkpoint that reads back; None if none exist.

    A checkpoint that fails to read is skipped with a warning naming it, and the next
    older one is tried. Orbax and TensorStore report damage with assorted exception types
    (a bare Exception for a truncated array file, KeyError for a missing item, ...), so
    any exception counts as unreadable -- except WorkdirMismatchError, which is a config
    problem, not damage. With `set_aside`, a skipped checkpoint is renamed
    STEP.unreadable.TIME, so the run can save that step anew and the files stay for a
    post-mortem.
    """
    unreadable, found = [], None
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        found = step, restore(step)
        break
      except WorkdirMismatchError:
        raise
      except Exception as error:  # noqa: BLE001 -- see the docstring.
        logging.warning("Skipping checkpoint %s: it cannot be read back (%s: %s).",
                        self.path(step), type(error).__name__, str(error)[:300])
        unreadable.append(self.path(step))
    if unreadable and set_aside:
      self._set_aside(unreadable)
    if found is None and unreadable:
      raise NoReadableCheckpointError(
          f"No checkpoint under {self.directory} reads back (tried "
          f"{', '.join(unreadable)}). " + (
              "They were renamed *.unreadable.*; rerun to train from scratch, or restore "
              "the folder from a backup." if set_aside else
              "Retrain, or restore the folder from a backup."))
    return found

  def _set_aside(self, paths: list[str]) -> None:
    """Renames unreadable step folders (on process 0, then all processes re-list)."""
    if jax.process_index() == 0:
      stamp = time.strftime("%Y%m%d-%H%M%S")
      for path in paths:
        os.rename(path, f"{path}.unreadable.{stamp}")
        logging.warning("Renamed the unreadable checkpoint %s to %s.unreadable.%s", path,
                        path, stamp)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("checkpoint_set_aside")
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _paths(tree: Any) -> list[str]:
  """"g_params/Dense_0/kernel", ... for each leaf, the same for a state and its saved
  metadata."""
  def name(key) -> str:
    for attribute in ("key", "name", "idx"):
      if hasattr(key, attribute):
        return str(getattr(key, attribute))
    return str(key)

  return ["/".join(name(k) for k in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _shapes_by_path(tree: Any) -> dict[str, tuple[int, ...]]:
  return dict(zip(_paths(tree), (tuple(leaf.shape) for leaf in jax.tree.leaves(tree))))


def with_shardings(shapes: Any, sharding: Any) -> Any:
  """`shapes` (ShapeDtypeStructs, e.g. from jax.eval_shape) placed with `sharding`: one
  Sharding for every array, or a matching tree of them -- what a restore asks for."""
  if isinstance(sharding, jax.sharding.Sharding):
    sharding = jax.tree.map(lambda _: sharding, shapes)
  return jax.tree.map(lambda s, where: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=where),
                      shapes, sharding)


def abstract_like(state_fn, *args, sharding: Any) -> Any:
  """Shapes and dtypes of `state_fn(*args)` placed with `sharding`, computed without
  running it."""
  return with_shardings(jax.eval_shape(state_fn, *args), sharding)
