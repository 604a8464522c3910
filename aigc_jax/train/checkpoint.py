"""Orbax checkpoints of a run: the state pytree plus JSON metadata (config, data spec).

Saves are asynchronous -- the device-to-host copy happens in `save`, the file writes in
the background -- so training continues while a checkpoint is written. Orbax writes each
step into a temporary folder and renames it when complete, so a run killed mid-save
leaves the previous checkpoint as the latest one.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Keeps the latest `max_to_keep` checkpoints of one run under `directory`."""

  def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
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

  def restore_state(self, step: int, abstract_state: Any) -> Any:
    """Restores onto the shardings in `abstract_state` (any device count)."""
    return self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))["state"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def abstract_like(state_fn, *args, sharding: jax.sharding.Sharding) -> Any:
  """Shapes and dtypes of `state_fn(*args)` with `sharding`, computed without running it."""
  shapes = jax.eval_shape(state_fn, *args)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                      shapes)
