#!/usr/bin/env bash
# Launches an aigc_jax entry point on this machine.
#
#   ./launch.sh [--help] [MODULE] -- [ARGS...]
#
# MODULE is an experiments entry point (default: train), e.g.
#   ./launch.sh -- --config=experiments/configs/mlp_gan.py:mnist --workdir=runs/mlp_gan
#   ./launch.sh sample -- --workdir=runs/mlp_gan --num_samples=64 --output=s.npy
# Runs from the repository root with the project's .venv if there is one. Offline, set
# AIGC_RAW_DATA_DIR to a folder of raw datasets (e.g. ../shared/data).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }

module=train
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "launch.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) module="$1"; shift ;;
  esac
done
if [[ ! -f "experiments/${module}.py" ]]; then
  echo "launch.sh: no entry point experiments/${module}.py (see --help)" >&2
  exit 2
fi
python=python3
[[ -x .venv/bin/python ]] && python=.venv/bin/python
exec "$python" -m "experiments.${module}" "$@"
