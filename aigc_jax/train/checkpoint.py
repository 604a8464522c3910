"""Orbax checkpoints of a run: the state pytree plus JSON metadata (config, data spec).

Saves are asynchronous -- the device-to-host copy happens in `save`, the file writes in
the background -- so training continues while a checkpoint is written. Orbax writes each
step into a temporary folder and renames it when complete, so a run killed mid-save
leaves the previous checkpoint as the latest one. A checkpoint damaged later (a truncated
or overwritten file, a lost disk block) is found when it fails to read back; see
`restore_newest`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

T = TypeVar("T")


class WorkdirMismatchError(ValueError):
  """The workdir holds checkpoints of a different family or architecture."""


class NoReadableCheckpointError(RuntimeError):
  """Every checkpoint of a run failed to read back."""


class Checkpointer:
  """Keeps the latest `max_to_keep` checkpoints of one run under `directory`."""

  def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=async_save))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def path(self, step: int | None) -> str | None:
    return None if step is None else os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any, meta: dict) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def restore_meta(self, step: int) -> dict:
    return self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def check_same_layout(self, step: int, abstract_state: Any) -> None:
    """Refuses a checkpoint whose arrays (paths, shapes) differ from `abstract_state`'s.

    A config change that alters the state -- another optimiser, model size or
    `grad_accum_steps` -- is a config problem to name, not damage to skip.
    """
    saved = _shapes_by_path(self._manager.item_metadata(step)["state"])
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
    """Restores onto the shardings in `abstract_state` (any device count)."""
    return self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))["state"]

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


def _shapes_by_path(tree: Any) -> dict[str, tuple[int, ...]]:
  """{"g_params/Dense_0/kernel": shape, ...}, the same for a state and its saved metadata."""
  def name(key) -> str:
    for attribute in ("key", "name", "idx"):
      if hasattr(key, attribute):
        return str(getattr(key, attribute))
    return str(key)

  return {"/".join(name(k) for k in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


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
