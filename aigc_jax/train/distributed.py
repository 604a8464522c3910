"""Joining a multi-process run through JAX's own distributed runtime.

One process per host (or per GPU) runs the same command; `jax.distributed.initialize`
connects them, after which `jax.devices()` lists every device of every process and one
jitted step spans them all. Nothing here speaks a protocol of its own.

Where the processes learn who they are:
* explicit flags (`--coordinator_address`, `--num_processes`, `--process_id`), as
  `launch.sh local N` passes them;
* otherwise the cluster's environment, which JAX reads itself: SLURM (`srun`), Open MPI
  (`mpirun`) and Cloud TPU VMs;
* otherwise this is a single-process run and nothing is initialised.
"""

from __future__ import annotations

import os

import jax
from absl import logging

from aigc_jax.errors import InvalidInputError

# How long the coordinator waits on a silent process before failing every other one, so
# a crashed process ends the run within this many seconds rather than leaving the
# others blocked in a collective. JAX's default (100 s) suits large clusters' hiccups.
HEARTBEAT_TIMEOUT_S = 20


def cluster_size_from_environment() -> int:
  """Processes the cluster scheduler started, or 1 where no scheduler is recognised."""
  for variable in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    if os.environ.get(variable, "").isdigit():
      return int(os.environ[variable])
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("TPU_HOSTNAMES", "")
  return len([h for h in hosts.split(",") if h]) or 1


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
  """Joins the run; a no-op for one process. Call before anything touches devices."""
  explicit = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in explicit):
    if any(v is None for v in explicit):
      raise InvalidInputError("A multi-process run needs all of --coordinator_address, "
                              "--num_processes and --process_id (got "
                              f"{coordinator_address!r}, {num_processes!r}, {process_id!r}); or "
                              "none of them inside SLURM, Open MPI or a TPU VM.")
    if not 0 <= process_id < num_processes:
      raise InvalidInputError(f"--process_id={process_id} is outside [0, {num_processes}).")
    if num_processes == 1:
      return
  elif cluster_size_from_environment() == 1:
    return
  # CPU devices of different processes talk through gloo (the GPU and TPU backends bring
  # their own collectives); this is what lets the tests run multi-process on one CPU.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S)
  logging.info("Process %d of %d: %d local and %d global device(s).", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
