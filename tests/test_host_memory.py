"""glibc malloc settings: XLA:CPU's per-call buffers reused rather than faulted in anew."""

import os
import platform
import subprocess
import sys

import pytest

from aigc_jax import host_memory

# One compiled call with a 100 MB intermediate (a product that a second dot reads): the
# median minor page faults of five calls after the first, in a fresh process, with and
# without the settings (the heap may still grow in one of them).
FAULTS_PER_CALL = """
import resource, sys
from aigc_jax import host_memory
if sys.argv[1] == "reuse":
  assert host_memory.reuse_freed_memory()
import jax, jax.numpy as jnp
x, w = jnp.ones((1024, 64)), jnp.ones((64, 25_000))
f = jax.jit(lambda x, w: jnp.dot(jnp.ones(1024), jnp.dot(x, w)))
f(x, w).block_until_ready()
faults = []
for _ in range(5):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(x, w).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sorted(faults)[2])
"""


def faults_per_call(mode: str) -> float:
  env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}  # No user malloc settings.
  repo_root = os.path.dirname(os.path.dirname(os.path.abspath(host_memory.__file__)))
  out = subprocess.run([sys.executable, "-c", FAULTS_PER_CALL, mode], check=True, env=env,
                       capture_output=True, text=True, cwd=repo_root).stdout
  return float(out.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
  default, reused = faults_per_call("default"), faults_per_call("reuse")
  assert default > 10_000  # 100 MB of 4 KiB pages mapped afresh by every call...
  assert reused < default / 100  # ...and reused once glibc keeps freed blocks.


def test_a_users_own_malloc_settings_win():
  assert host_memory._user_tunes_malloc({"MALLOC_ARENA_MAX": "4"})
  assert host_memory._user_tunes_malloc({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"})
  assert not host_memory._user_tunes_malloc({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX"})
  assert not host_memory._user_tunes_malloc({})
