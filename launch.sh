#!/usr/bin/env bash
# Launches an aigc_jax entry point: one process, N processes on this machine, or a cluster.
#
#   ./launch.sh [MODE] [MODULE] -- [ARGS...]
#
# MODULE is an experiments entry point (default: train). ARGS go to it unchanged.
# MODE:
#   (none)        one process here, using every local device (CPU, or all GPUs of a host).
#   local N [--devices_per_process K] [--gpus_per_process G]
#                 N processes on loopback joined by jax.distributed, each with K fake CPU
#                 devices when K is given, or GPUs I*G..I*G+G-1 (CUDA_VISIBLE_DEVICES) when
#                 G is; output of process I in WORKDIR/logs/process_I.log. If one process
#                 fails the others are stopped; SIGTERM reaches all of them.
#   slurm [--nodes N] [--gpus_per_node G] [--run]
#                 prints an sbatch script, one task per GPU (JAX reads SLURM's environment);
#                 --run submits it with sbatch.
#   tpu-vm --name NAME --zone ZONE [--run]
#                 prints the gcloud command that starts the entry point on every worker of
#                 a Cloud TPU VM pod slice (JAX reads the TPU environment); --run runs it.
# Examples:
#   ./launch.sh -- --config=experiments/configs/mlp_gan.py:mnist --workdir=runs/mlp_gan
#   ./launch.sh local 2 --devices_per_process 2 -- --config=... --workdir=runs/two
#   ./launch.sh sample -- --workdir=runs/mlp_gan --num_samples=64 --output=s.npy
# Runs from the repository root with the project's .venv if there is one. Offline, set
# AIGC_RAW_DATA_DIR to a folder of raw datasets (e.g. ../shared/data).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

usage() { sed -n '2,25s/^# \{0,1\}//p' "$0"; }
fail() { echo "launch.sh: $*" >&2; exit 2; }

TERM_GRACE_S=${TERM_GRACE_S:-120}
mode=single num_processes=1 devices_per_process="" gpus_per_process="" nodes=1 gpus_per_node=8
run=0
tpu_name="" tpu_zone=""
case "${1:-}" in
  local) mode=local; num_processes="${2:-}"; shift 2 || fail "local needs a process count"
         [[ "$num_processes" =~ ^[1-9][0-9]*$ ]] || fail "local N: N must be a positive integer" ;;
  slurm|tpu-vm) mode="$1"; shift ;;
esac
positive_option() {  # positive_option VAR OPTION [VALUE]: VAR=VALUE, a positive integer.
  [[ $# -ge 3 && "$3" =~ ^[1-9][0-9]*$ ]] || fail "$2 needs a positive integer (got '${3:-}')"
  printf -v "$1" '%s' "$3"
}
text_option() {  # text_option VAR OPTION [VALUE]: VAR=VALUE, a value that is not an option.
  [[ $# -ge 3 && -n "$3" && "$3" != -* ]] || fail "$2 needs a value (see --help)"
  printf -v "$1" '%s' "$3"
}
module=train
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    --devices_per_process) positive_option devices_per_process "$@"; shift 2 ;;
    --gpus_per_process) positive_option gpus_per_process "$@"; shift 2 ;;
    --nodes) positive_option nodes "$@"; shift 2 ;;
    --gpus_per_node) positive_option gpus_per_node "$@"; shift 2 ;;
    --name) text_option tpu_name "$@"; shift 2 ;;
    --zone) text_option tpu_zone "$@"; shift 2 ;;
    --run) run=1; shift ;;
    -*) fail "unknown option $1 for mode '$mode' (see --help)" ;;
    *) module="$1"; shift ;;
  esac
done
[[ -f "experiments/${module}.py" ]] || fail "no entry point experiments/${module}.py (see --help)"
python=python3
[[ -x .venv/bin/python ]] && python="$PWD/.venv/bin/python"
entry=(-m "experiments.${module}" "$@")

workdir_of() {  # The value of --workdir in the entry point's arguments.
  local previous=""
  for arg in "$@"; do
    [[ "$arg" == --workdir=* ]] && { echo "${arg#--workdir=}"; return; }
    [[ "$previous" == --workdir ]] && { echo "$arg"; return; }
    previous="$arg"
  done
  fail "mode '$mode' needs --workdir among the entry point's arguments"
}

quoted() { printf '%q ' "$@"; }

run_local() {
  local logs pids=() port code=0 i
  logs="$(workdir_of "$@")/logs"
  mkdir -p "$logs"
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local xla_flags="${XLA_FLAGS:-}"
  [[ -n "$devices_per_process" ]] && \
      xla_flags="$xla_flags --xla_force_host_platform_device_count=$devices_per_process"
  for ((i = 0; i < num_processes; i++)); do
    local gpus=()
    [[ -n "$gpus_per_process" ]] && \
        gpus=(CUDA_VISIBLE_DEVICES="$(seq -s, $((i * gpus_per_process)) $(((i + 1) * gpus_per_process - 1)))")
    env "${gpus[@]}" XLA_FLAGS="$xla_flags" "$python" "${entry[@]}" \
        --coordinator_address="127.0.0.1:$port" --num_processes="$num_processes" \
        --process_id="$i" > "$logs/process_$i.log" 2>&1 &
    pids+=($!)
  done
  echo "launch.sh: $num_processes processes (pids ${pids[*]}), logs in $logs/" >&2
  # SIGTERM is forwarded; a run too stuck to save and exit within TERM_GRACE_S (a process
  # blocked in a collective) is then killed, and launch.sh exits non-zero.
  trap 'kill -TERM "${pids[@]}" 2>/dev/null || true
        (sleep "$TERM_GRACE_S"; kill -KILL "${pids[@]}" 2>/dev/null || true) &' TERM INT
  local -A running=()
  for ((i = 0; i < num_processes; i++)); do running[${pids[$i]}]=$i; done
  while ((${#running[@]})); do
    local done_pid=""
    code=0
    wait -n -p done_pid "${!running[@]}" || code=$?
    # A forwarded signal interrupted the wait (bash may then leave done_pid unset): wait on.
    [[ -z "${done_pid:-}" ]] && continue
    local index=${running[$done_pid]}
    unset "running[$done_pid]"
    if [[ $code -ne 0 ]]; then
      echo "launch.sh: process $index exited with status $code; stopping the others." \
           "Its log, $logs/process_$index.log, ends:" >&2
      tail -n 20 "$logs/process_$index.log" >&2
      kill -KILL "${!running[@]}" 2>/dev/null || true
      wait || true
      exit "$code"
    fi
  done
}

slurm_script() {
  cat <<EOF
#!/usr/bin/env bash
#SBATCH --nodes=$nodes
#SBATCH --ntasks-per-node=$gpus_per_node
#SBATCH --gpus-per-task=1
#SBATCH --output=slurm-%j-%t.out
# One task per GPU; jax.distributed.initialize() reads the coordinator, process count and
# process id from SLURM's environment.
cd $(quoted "$PWD")
srun $(quoted "$python" "${entry[@]}")
EOF
}

run_tpu_vm() {
  [[ -n "$tpu_name" && -n "$tpu_zone" ]] || fail "tpu-vm needs --name and --zone"
  # Every worker runs the same command; JAX reads the TPU environment to join them.
  local command=(gcloud compute tpus tpu-vm ssh "$tpu_name" --zone="$tpu_zone" --worker=all
                 --command="$(quoted cd "$PWD")&& $(quoted "$python" "${entry[@]}")")
  if ((run)); then "${command[@]}"; else quoted "${command[@]}"; echo; fi
}

case "$mode" in
  single) exec "$python" "${entry[@]}" ;;
  local) run_local "$@" ;;
  slurm) if ((run)); then slurm_script | sbatch; else slurm_script; fi ;;
  tpu-vm) run_tpu_vm ;;
esac
