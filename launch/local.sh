#!/usr/bin/env bash
# N training processes on this machine, joined through a coordinator on 127.0.0.1 (gloo collectives on CPU): the
# multi-host code path (process-local data, cross-process orbax checkpoints) without a cluster.
#
#   launch/local.sh 2 --config=configs/three_task.py:smoke --workdir=/tmp/two_procs
#
# Environment: DEVICES_PER_PROCESS (CPU devices each process simulates, default 2), PORT (coordinator, default
# 12355), PYTHON (default python). Process 0 prints to the terminal, the others to WORKDIR/process_<i>.log. The first
# process to fail stops the others, and its exit code is the script's.
set -euo pipefail
if [[ $# -lt 2 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 NUM_PROCESSES --config=... --workdir=DIR [flags...]" >&2
  exit 2
fi
n=$1; shift
workdir=$(printf '%s\n' "$@" | sed -n 's/^--workdir=//p' | tail -1)
mkdir -p "${workdir:-.}"
export XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES_PER_PROCESS:-2} ${XLA_FLAGS:-}"
export JAX_PLATFORMS=cpu
pids=()
for ((i = 0; i < n; i++)); do
  cmd=("${PYTHON:-python}" -m mtl_jax.main "$@" --coordinator_address="127.0.0.1:${PORT:-12355}"
       --num_processes="$n" --process_id="$i")
  if ((i == 0)); then "${cmd[@]}" & else "${cmd[@]}" >"${workdir:-.}/process_$i.log" 2>&1 & fi
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' TERM INT
for ((left = n; left > 0; left--)); do  # the first failure stops the others (they would wait for it forever)
  status=0
  wait -n || status=$?
  if ((status != 0)); then
    kill "${pids[@]}" 2>/dev/null || true
    wait || true
    exit "$status"
  fi
done
