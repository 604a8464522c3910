"""Turns SIGTERM (how clusters announce preemption) into a flag the loop polls.

The loop checks the flag once per step -- a Python bool, no device sync -- and on seeing
it saves a checkpoint and returns normally, so the process exits 0 and can be resumed.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class PreemptionFlag:
  def __init__(self):
    self._event = threading.Event()

  @property
  def requested(self) -> bool:
    return self._event.is_set()

  def request(self, *_) -> None:
    self._event.set()


@contextlib.contextmanager
def sigterm_flag():
  """Within the block, SIGTERM sets the yielded flag instead of killing the process."""
  flag = PreemptionFlag()
  if threading.current_thread() is not threading.main_thread():
    yield flag  # Signals can only be handled on the main thread.
    return
  previous = signal.signal(signal.SIGTERM, flag.request)
  try:
    yield flag
  finally:
    signal.signal(signal.SIGTERM, previous)
