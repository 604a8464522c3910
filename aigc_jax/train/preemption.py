"""Turns SIGTERM (how clusters announce preemption) into a decision the loop polls.

On seeing it, the loop saves a checkpoint and returns normally, so the process exits 0
and the run can be resumed.

* One process: a Python SIGTERM handler sets a flag; polling it is a bool read, no device
  sync.
* Several processes: every process must save at the same step, or one would wait in the
  save's collectives while another runs a train step. JAX's preemption service (on
  after `jax.distributed.initialize`) catches SIGTERM on any process, tells the others,
  and agrees on one step at which `reached_preemption_sync_point` is true everywhere.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import jax
from jax.experimental import multihost_utils


class SigtermFlag:
  """Set by SIGTERM; `reached(call)` is true from the first poll after the signal."""

  def __init__(self):
    self._event = threading.Event()

  def request(self, *_) -> None:
    self._event.set()

  def reached(self, call_index: int) -> bool:
    del call_index  # One process needs no agreement on where to stop.
    return self._event.is_set()


class AgreedPreemption:
  """Multi-process: true at the same call index on every process after any SIGTERM."""

  def reached(self, call_index: int) -> bool:
    return multihost_utils.reached_preemption_sync_point(call_index)


@contextlib.contextmanager
def preemption_notice():
  """Yields an object whose `reached(call_index)` says: save now and stop.

  `call_index` must count the loop's jitted calls from the start of this process, so it
  is the same number on every process at the same point of the run.
  """
  if jax.process_count() > 1:
    yield AgreedPreemption()
    return
  flag = SigtermFlag()
  if threading.current_thread() is not threading.main_thread():
    yield flag  # Signals can only be handled on the main thread.
    return
  previous = signal.signal(signal.SIGTERM, flag.request)
  try:
    yield flag
  finally:
    signal.signal(signal.SIGTERM, previous)
