"""Trains a model from a config file; rerunning with the same workdir resumes.

  python -m experiments.train --config=experiments/configs/mlp_gan.py:mnist \
      --workdir=runs/mlp_gan [--config.num_steps=2000 ...]

Multi-process (one process per host or GPU): `./launch.sh local N -- ARGS` on one machine;
under SLURM, Open MPI or on a TPU VM the processes find each other from the environment.
"""

from absl import app, flags
from ml_collections import config_flags

from aigc_jax.train import distributed
from aigc_jax.train.loop import train_and_evaluate
from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, logs, samples.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process run started "
    "by hand (launch.sh local sets it); clusters (SLURM, MPI, TPU VM) need none.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, from 0.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_runtime()
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
