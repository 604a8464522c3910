"""Scaling out: multi-process runs on loopback (topology invariance, preemption, dead
processes, launch.sh), the pmap path and FSDP.

Each multi-process run here is real: separate Python processes joined by
`jax.distributed` over gloo, started by `launch.sh local` or by hand, as on a cluster.
"""

import importlib
import os
import signal
import socket
import subprocess
import time

import jax
import jax.numpy as jnp
import pytest

from aigc_jax.train import distributed, sharding
from aigc_jax.train.loop import train_and_evaluate
from aigc_jax.train.metric_writer import read_metrics
from tests.conftest import REPO_ROOT, write_image_folder
from tests.test_cli import command, folder_flags, saved_steps, start, wait_for_checkpoint

LAUNCH = os.path.join(REPO_ROOT, "launch.sh")
FAST_COMPILE = "--xla_backend_optimization_level=0"  # As conftest, without its 4 devices.
STEPS = dict(num_steps=8, log_every=1, checkpoint_every=4, sample_every=1000)


def launch_local(num_processes, devices_per_process, image_folder, workdir, **overrides):
  return subprocess.run(
      [LAUNCH, "local", str(num_processes), "--devices_per_process",
       str(devices_per_process), "--", *folder_flags(image_folder, workdir, **overrides)],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, "XLA_FLAGS": FAST_COMPILE})


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def losses(workdir):
  return [{k: v for k, v in m.items() if k != "steps_per_s"} for m in read_metrics(workdir)]


def assert_same_trajectory(got, want):
  assert [m["step"] for m in got] == [m["step"] for m in want]
  for g, w in zip(got, want):
    assert g == pytest.approx(w, rel=1e-5, abs=1e-6), g["step"]


def test_every_topology_trains_the_same_and_restores_on_another_device_count(
    tiny_config, image_folder, tmp_path):
  tiny_config.update(STEPS)
  reference = str(tmp_path / "one_process_4_devices")
  train_and_evaluate(tiny_config, reference)  # conftest: 4 devices in this process.
  want = losses(reference)

  two_by_two = str(tmp_path / "two_processes_2_devices")
  run = launch_local(2, 2, image_folder, two_by_two, **STEPS)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "on 4 device(s)" in open(os.path.join(two_by_two, "logs", "process_0.log")).read()
  assert_same_trajectory(losses(two_by_two), want)

  # Four processes of one device, under pmap, stop at step 4; one process of two devices,
  # under sharded jit, resumes.
  four_by_one = str(tmp_path / "four_processes_1_device")
  run = launch_local(4, 1, image_folder, four_by_one, **{**STEPS, "num_steps": 4},
                     parallel="pmap")
  assert run.returncode == 0, run.stderr[-3000:]
  assert sorted(os.listdir(os.path.join(four_by_one, "logs"))) == [
      f"process_{i}.log" for i in range(4)]
  run = launch_local(1, 2, image_folder, four_by_one, **STEPS)
  assert run.returncode == 0, run.stderr[-3000:]
  log = open(os.path.join(four_by_one, "logs", "process_0.log")).read()
  assert "Resumed from" in log and "on 2 device(s)" in log
  assert_same_trajectory(losses(four_by_one), want)


@pytest.mark.parametrize("config_file", ["dcgan", "vae"])
def test_pmap_trains_like_sharded_jit(config_file, image_folder, tmp_path):
  """DCGAN: BatchNorm statistics over the global batch; VAE: posterior noise and binarisation."""
  config = importlib.import_module(f"experiments.configs.{config_file}").get_config("tiny")
  config.data.name, config.data.image_folder = "image_folder", image_folder
  config.update(num_steps=4, log_every=1, eval_every=0)
  runs = {}
  for parallel in ("jit", "pmap"):
    config.parallel = parallel
    runs[parallel] = str(tmp_path / parallel)
    train_and_evaluate(config, runs[parallel])
  assert_same_trajectory(losses(runs["pmap"]), losses(runs["jit"]))


def test_fsdp_trains_like_a_replicated_state_and_resumes_under_another_split(
    tiny_config, tmp_path):
  tiny_config.update(num_steps=6, log_every=1, checkpoint_every=2)
  replicated_run, split_run = str(tmp_path / "replicated"), str(tmp_path / "split")
  train_and_evaluate(tiny_config, replicated_run)
  tiny_config.update(fsdp=2, num_steps=4)
  train_and_evaluate(tiny_config, split_run)
  tiny_config.update(fsdp=4, num_steps=6)  # Restores the fsdp=2 checkpoint split 4 ways.
  train_and_evaluate(tiny_config, split_run)
  assert_same_trajectory(losses(split_run), losses(replicated_run))


def test_fsdp_stores_a_slice_of_each_array_per_device():
  mesh = sharding.make_mesh(fsdp=2)  # 2 x 2 over the 4 test devices.
  shapes = {"kernel": jax.ShapeDtypeStruct((6, 8), jnp.float32),
            "bias": jax.ShapeDtypeStruct((3,), jnp.float32),
            "step": jax.ShapeDtypeStruct((), jnp.int32)}
  placed = jax.jit(lambda: jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes),
                   out_shardings=sharding.state_shardings(shapes, mesh))()
  assert placed["kernel"].addressable_shards[0].data.shape == (6, 4)  # Largest dim split.
  assert placed["bias"].addressable_shards[0].data.shape == (3,)  # 3 does not split.
  with pytest.raises(ValueError, match="must divide the 4 devices"):
    sharding.make_mesh(fsdp=3)


def test_unknown_parallel_mode_is_refused(tiny_config, tmp_path):
  tiny_config.parallel = "pjit"
  with pytest.raises(ValueError, match="must be one of"):
    train_and_evaluate(tiny_config, str(tmp_path))


def start_processes(image_folder, workdir, tmp_path, num_processes=2, env=None, **overrides):
  """Starts the processes by hand, as a cluster scheduler would; one device each."""
  port = free_port()
  return [start(command("experiments.train", *folder_flags(image_folder, workdir, **overrides),
                        f"--coordinator_address=127.0.0.1:{port}",
                        f"--num_processes={num_processes}", f"--process_id={i}"),
                tmp_path / f"process_{i}.log", env={"XLA_FLAGS": FAST_COMPILE, **(env or {})})
          for i in range(num_processes)]


def test_process_zero_alone_prepares_the_out_of_distribution_dataset(raw_data_dir, tmp_path):
  """Digits-sized images dirtied with MNIST digits, MNIST not yet prepared: one process
  builds it while the other waits, rather than both writing the same folder at once."""
  folder = write_image_folder(str(tmp_path / "images"), shape=(28, 28, 1))
  processes = start_processes(
      folder, str(tmp_path / "run"), tmp_path, env={"AIGC_RAW_DATA_DIR": raw_data_dir},
      num_steps=2, checkpoint_every=2, **{"data.corrupt": "out_of_distribution=0.25",
                                           "data.ood_source": "mnist",
                                           "data.data_dir": str(tmp_path / "tfds")})
  logs = []
  for i, process in enumerate(processes):
    assert process.wait(timeout=120) == 0, (tmp_path / f"process_{i}.log").read_text()[-3000:]
    logs.append((tmp_path / f"process_{i}.log").read_text())
  assert "Preparing dataset 'mnist'" in logs[0]
  assert "Preparing dataset" not in logs[1]
  assert all("out_of_distribution" in log for log in logs)


def test_sigterm_to_one_process_saves_all_at_one_step_and_a_dead_process_ends_the_rest(
    image_folder, tmp_path):
  workdir = str(tmp_path / "run")
  endless = dict(num_steps=1_000_000, checkpoint_every=50, log_every=10,
                 sample_every=1_000_000)
  first, second = start_processes(image_folder, workdir, tmp_path, **endless)
  wait_for_checkpoint(first, workdir)
  second.send_signal(signal.SIGTERM)  # The preemption notice reaches one process only.
  assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
  saved = saved_steps(workdir)[-1]
  assert saved == read_metrics(workdir)[-1]["step"] > 0
  for i in range(2):
    assert f"SIGTERM received: saved step {saved}" in (tmp_path / f"process_{i}.log").read_text()

  first, second = start_processes(image_folder, workdir, tmp_path, **endless)
  deadline = time.time() + 120
  while saved_steps(workdir)[-1] == saved:  # Resumed and saved once more.
    assert time.time() < deadline and first.poll() is None
    time.sleep(0.1)
  second.send_signal(signal.SIGKILL)
  killed_at = time.time()
  assert first.wait(timeout=distributed.HEARTBEAT_TIMEOUT_S + 60) != 0
  assert time.time() - killed_at < distributed.HEARTBEAT_TIMEOUT_S + 60
  assert "another task died" in (tmp_path / "process_0.log").read_text()


def test_launcher_stops_the_run_when_a_process_fails_and_names_it(image_folder, tmp_path):
  run = launch_local(2, 1, image_folder, str(tmp_path), batch_size=3)
  assert run.returncode != 0
  assert "exited with status" in run.stderr and "batch" in run.stderr


def test_launcher_prints_cluster_commands(tmp_path):
  args = ["--", "--config=experiments/configs/mlp_gan.py:mnist", "--workdir=runs/pod"]
  slurm = subprocess.run([LAUNCH, "slurm", "--nodes", "4", *args], capture_output=True,
                         text=True, check=True).stdout
  assert "#SBATCH --nodes=4" in slurm and "srun" in slurm and "experiments.train" in slurm
  tpu = subprocess.run([LAUNCH, "tpu-vm", "--name", "pod", "--zone", "z", *args],
                       capture_output=True, text=True, check=True).stdout
  assert "--worker=all" in tpu and "experiments.train" in tpu
  missing = subprocess.run([LAUNCH, "tpu-vm", *args], capture_output=True, text=True)
  assert missing.returncode == 2 and "--name and --zone" in missing.stderr


def test_partial_process_flags_are_refused():
  with pytest.raises(ValueError, match="needs all of --coordinator_address"):
    distributed.initialize("127.0.0.1:1234", None, 0)
  with pytest.raises(ValueError, match="outside"):
    distributed.initialize("127.0.0.1:1234", 2, 2)
