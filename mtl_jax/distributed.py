"""Joining a multi-process run (several hosts, or several processes on one host) before JAX starts its backends.

Explicit: `--coordinator_address=host:port --num_processes=N --process_id=i` (launch/local.sh, launch/slurm.sh pass
them). Detected: `--multiprocess` alone lets `jax.distributed.initialize()` read the cluster's own settings (TPU pod
metadata, SLURM's environment). CPU processes exchange collectives through gloo.
"""

import jax

from mtl_jax.errors import UserError


def initialize(coordinator_address: str | None, num_processes: int | None, process_id: int | None,
               detect: bool = False) -> None:
  """Calls `jax.distributed.initialize` when the flags ask for a multi-process run; a single process does nothing."""
  explicit = {"--coordinator_address": coordinator_address, "--num_processes": num_processes,
              "--process_id": process_id}
  given = {k for k, v in explicit.items() if v is not None}
  if not given and not detect:
    return
  if given and len(given) < 3:
    missing = sorted(set(explicit) - given)
    raise UserError(f"{', '.join(missing)}: required with {', '.join(sorted(given))} (a multi-process run needs "
                    "the coordinator's host:port, the number of processes and this process's id)")
  if given and not 0 <= process_id < num_processes:
    raise UserError(f"--process_id: expected 0..{num_processes - 1}, found {process_id}")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if given:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  else:
    jax.distributed.initialize()
