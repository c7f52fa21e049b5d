"""Joining a multi-process run (several hosts, or several processes on one host) before JAX starts its backends, and
stopping it when one of its processes is lost.

Explicit: `--coordinator_address=host:port --num_processes=N --process_id=i` (launch/local.sh, launch/slurm.sh pass
them). Detected: `--multiprocess` alone lets `jax.distributed.initialize()` read the cluster's own settings (TPU pod
metadata, SLURM's environment). CPU processes exchange collectives through gloo.

A process that dies or hangs would leave the others waiting in their next collective. Each process therefore writes
a counter to the coordination service's key-value store every `BEAT_S` seconds and reads everyone's (`Watchdog`); a
peer whose counter stands still for `peer_timeout` seconds (`COLLECTIVE_FAILED_S` once a collective has failed, as
gloo's do at once when a peer's socket closes) is lost, and every survivor prints one line naming it and
exits with `EXIT_LOST`. JAX's own heartbeat is set to twice that, so this line comes before JAX's fatal abort. The
exception: losing process 0 takes the coordination service with it, and JAX aborts the others at once with its own
message (it cannot be caught from Python).
"""

import contextlib
import os
import sys
import threading
import time

import jax

from mtl_jax.errors import UserError

BEAT_S = 2.0  # how often each process shows it is alive
COLLECTIVE_FAILED_S = 3 * BEAT_S  # the silence that counts once this process saw a collective fail
EXIT_LOST = 75  # exit code when a peer is lost (EX_TEMPFAIL: rerunning the launch resumes from the last checkpoint)
_KEY = "mtl_jax/alive/"
_DONE = "done"


def initialize(coordinator_address: str | None, num_processes: int | None, process_id: int | None,
               detect: bool = False, peer_timeout: int = 30) -> "Watchdog | None":
  """Calls `jax.distributed.initialize` when the flags ask for a multi-process run and starts the `Watchdog`; a
  single process does nothing and returns None."""
  explicit = {"--coordinator_address": coordinator_address, "--num_processes": num_processes,
              "--process_id": process_id}
  given = {k for k, v in explicit.items() if v is not None}
  if not given and not detect:
    return None
  if given and len(given) < 3:
    missing = sorted(set(explicit) - given)
    raise UserError(f"{', '.join(missing)}: required with {', '.join(sorted(given))} (a multi-process run needs "
                    "the coordinator's host:port, the number of processes and this process's id)")
  if given and not 0 <= process_id < num_processes:
    raise UserError(f"--process_id: expected 0..{num_processes - 1}, found {process_id}")
  if peer_timeout < 2 * BEAT_S:
    raise UserError(f"--peer_timeout: expected at least {2 * BEAT_S:g} seconds, found {peer_timeout}")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(*((coordinator_address, num_processes, process_id) if given else ()),
                             heartbeat_timeout_seconds=2 * peer_timeout)
  from jax._src import distributed  # the coordination client; jax.experimental.multihost_utils uses it the same way
  watchdog = Watchdog(distributed.global_state.client, jax.process_index(), jax.process_count(), peer_timeout)
  watchdog.start()
  return watchdog


def silent_peers(last_seen: dict[int, tuple[str | None, float]], values: dict[int, str], now: float,
                 timeout: float) -> tuple[dict[int, tuple[str | None, float]], list[int]]:
  """One watchdog tick: each peer's (value, time it last changed) updated with the values just read, and the peers
  whose value has not changed for `timeout` seconds (a peer that finished cleanly is never silent)."""
  seen = {}
  for peer, (value, since) in last_seen.items():
    new = values.get(peer, value)
    seen[peer] = (new, since if new == value else now)
  return seen, sorted(p for p, (v, since) in seen.items() if v != _DONE and now - since > timeout)


class Watchdog(threading.Thread):
  """Shows this process is alive and stops it when another one is not (module docstring)."""

  def __init__(self, client, process: int, count: int, timeout: float):
    super().__init__(name="mtl_jax-watchdog", daemon=True)
    self.client, self.process, self.count, self.timeout = client, process, count, timeout
    self.finished = threading.Event()

  def run(self) -> None:
    now = time.monotonic()
    seen = {p: (None, now) for p in range(self.count) if p != self.process}
    beat = 0
    while not self.finished.wait(BEAT_S):
      beat += 1
      try:
        self.client.key_value_set(f"{_KEY}{self.process}", str(beat), allow_overwrite=True)
        values = {int(k[len(_KEY):]): v for k, v in self.client.key_value_dir_get(_KEY)}
      except Exception as e:  # noqa: BLE001 - whatever the RPC raises, the coordination service is gone
        self.stop_job([0], f"the coordination service it hosts stopped answering ({str(e).splitlines()[0]})")
      seen, silent = silent_peers(seen, values, time.monotonic(), self.timeout)
      if silent:
        self.stop_job(silent, f"no sign of life for {self.timeout:g} s")

  def stop_job(self, lost: list[int], why: str) -> None:
    names = ", ".join(map(str, lost))
    print(f"\nerror: process {self.process}: lost process {names} of {self.count} ({why}); stopping. Run the same "
          "launch again to resume from the last complete checkpoint", file=sys.stderr, flush=True)
    os._exit(EXIT_LOST)  # not sys.exit: JAX's exit handler would wait for the lost process and then abort

  def close(self) -> None:
    """A clean end: the others no longer expect this process to show signs of life."""
    self.finished.set()
    self.join()
    self.client.key_value_set(f"{_KEY}{self.process}", _DONE, allow_overwrite=True)


@contextlib.contextmanager
def stopped_by_lost_peers(watchdog: "Watchdog | None"):
  """Runs the job. An error in a multi-process run that may come from a collective whose peer went away (gloo raises
  JaxRuntimeError, or ValueError from a dispatch) waits for the watchdog's verdict, so the user sees its one line
  rather than the collective's traceback; an error nobody was lost for keeps its traceback. The others learn that
  this process stopped from its silence; a clean end tells them."""
  if watchdog is None:
    yield
    return
  try:
    yield
  except BaseException as e:
    if isinstance(e, Exception) and not isinstance(e, UserError):
      watchdog.timeout = min(watchdog.timeout, COLLECTIVE_FAILED_S)  # a dead peer's socket closed: no need to wait
      watchdog.join(watchdog.timeout + 3 * BEAT_S)  # stop_job exits the process if a peer was lost
    watchdog.finished.set()
    raise
  watchdog.close()
