#!/usr/bin/env bash
# One training process per GPU node under SLURM; process 0's node is the coordinator.
#
#   sbatch --nodes=4 --gpus-per-node=8 --ntasks-per-node=1 launch/slurm.sh \
#       --config=configs/pos_chunk.py --workdir=/shared/runs/pos_chunk --config.mesh.fsdp=8
#
# Every process sees its node's GPUs as local devices; the mesh spans all of them (config.mesh, -1 = the rest). The
# workdir must be on a filesystem every node reads and writes (checkpoints are written by all processes).
#SBATCH --job-name=mtl_jax
#SBATCH --ntasks-per-node=1
#SBATCH --output=%x-%j.out
set -euo pipefail
coordinator=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun --kill-on-bad-exit=1 bash -c "python -m mtl_jax.main $* \
  --coordinator_address=${coordinator}:${PORT:-12355} --num_processes=\$SLURM_NTASKS --process_id=\$SLURM_PROCID"
