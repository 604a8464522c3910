"""glibc malloc settings under which XLA:CPU reuses memory between compiled calls.

XLA:CPU allocates each call's temporary buffer (64 MB for one of the seed DCGAN's conv
layers, more for its step) with posix_memalign on a worker thread and frees it when the
call ends. glibc serves a thread's block from that thread's arena only up to 64 MB, and
any block over 32 MB in its default settings, by mapping fresh pages that it unmaps on
free; the next call then faults every page in again, 4 KiB at a time, zeroed by the
kernel. Measured here (2 cores): 17,000 faults per call and 56 -> 37 ms for the seed
generator's 7x7x256 -> 14x14x128 layer, forward + backward at batch 128, without them;
the seed DCGAN's step 1.07-1.10x. With one arena, no mapped blocks and no trimming of
the heap's top, freed memory is handed to the next call as it is.

glibc fixes its arena count when a second thread first allocates, so this must run before
any other thread does: the entry points' packages (experiments, benchmarks) call it when
they are imported. A GLIBC_TUNABLES or MALLOC_ARENA_MAX in the environment is the user's
own choice and is left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
# Largest trim threshold mallopt takes (an int): the heap's free top stays mapped.
NEVER_TRIM = 2 ** 31 - 1


def reuse_freed_memory() -> bool:
  """Sets glibc's malloc to reuse freed blocks of any size; whether it was set."""
  if platform.libc_ver()[0] != "glibc" or _user_tunes_malloc(os.environ):
    return False
  mallopt = ctypes.CDLL(None).mallopt
  return all(mallopt(parameter, value) == 1 for parameter, value in
             [(M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER_TRIM)])


def _user_tunes_malloc(environ) -> bool:
  return "MALLOC_ARENA_MAX" in environ or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")
