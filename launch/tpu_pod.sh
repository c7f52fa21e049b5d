#!/usr/bin/env bash
# The same command on every host of a Cloud TPU VM pod slice; JAX reads the pod's topology itself (--multiprocess).
#
#   launch/tpu_pod.sh my-tpu us-central2-b --config=configs/news_topic_ner.py --workdir=/mnt/shared/runs/ntn
#
# Assumes mtl_jax is installed on every worker (e.g. the README's first command run once with --worker=all) and the
# workdir is on a filesystem every worker shares (e.g. a Filestore mount). Arguments after the TPU name and zone go
# to mtl_jax.main.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 TPU_NAME ZONE --config=... --workdir=... [flags...]" >&2
  exit 2
fi
tpu=$1 zone=$2; shift 2
printf -v args ' %q' "$@"
gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all \
  --command="cd ${REMOTE_DIR:-mtl_jax} && . .venv/bin/activate && python -m mtl_jax.main${args} --multiprocess"
