"""Ends a multi-process run whose steps stop making progress.

A step's collectives wait for every process. If one process hangs without dying (a
deadlocked collective, a stuck file system), JAX's heartbeat sees nothing wrong and every
other process waits inside the collective for ever -- where none of the loop's Python
runs, not even its SIGTERM handling. A daemon thread watches the loop instead: when no
jitted call has been issued for `timeout_s`, it logs the step and the process and exits
the process with status 3, so the launcher or cluster sees a failed run rather than a
silent one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

from absl import logging

STALL_EXIT_STATUS = 3


class StallWatchdog:
  """`with StallWatchdog(timeout_s, where) as watchdog:` ... `watchdog.beat(step)` per call.

  `where()` describes the process for the error (e.g. "process 1 of 2"); timeout_s = 0
  turns the watchdog off. `exit_process` is os._exit: a process blocked in a collective cannot
  unwind, so it is ended outright.
  """

  def __init__(self, timeout_s: float, where: Callable[[], str],
               exit_process: Callable[[int], None] = os._exit):
    self._timeout_s = timeout_s
    self._where = where
    self._exit = exit_process
    self._step = 0
    self._last = time.monotonic()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._watch, name="stall-watchdog", daemon=True)

  def __enter__(self) -> StallWatchdog:
    if self._timeout_s > 0:
      self._last = time.monotonic()
      self._thread.start()
    return self

  def __exit__(self, *_) -> None:
    self._stop.set()

  def beat(self, step: int) -> None:
    """The loop reached `step`: the run is progressing."""
    self._step, self._last = step, time.monotonic()

  def _watch(self) -> None:
    poll = min(self._timeout_s / 4, 10.0)
    while not self._stop.wait(poll):
      stalled = time.monotonic() - self._last
      if stalled > self._timeout_s:
        message = (f"No progress for {stalled:.0f} s after step {self._step} on "
                   f"{self._where()}: a collective is waiting on a process that is alive but "
                   "stuck. Ending this process (status 3); rerun to resume from the last "
                   "checkpoint. --config.stall_timeout_s sets the limit.")
        logging.error(message)
        sys.stderr.write(f"ERROR: {message}\n")
        sys.stderr.flush()
        self._exit(STALL_EXIT_STATUS)
        return
