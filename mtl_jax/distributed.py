"""Joining a multi-process run (several hosts, or several processes on one host) before JAX starts its backends, and
stopping it when one of its processes is lost.

Explicit: `--coordinator_address=host:port --num_processes=N --process_id=i` (launch/local.sh, launch/slurm.sh pass
them). Detected: `--multiprocess` alone reads the cluster's own settings (TPU pod metadata, SLURM's environment) as
`jax.distributed.initialize()` would. CPU processes exchange collectives through gloo.

A process that dies or hangs would leave the others waiting in their next collective. Each process therefore writes
a counter to the coordination service's key-value store every `BEAT_S` seconds and reads everyone's (`Watchdog`); a
peer whose counter stands still for `peer_timeout` seconds (`COLLECTIVE_FAILED_S` once a collective has failed, as
gloo's do at once when a peer's socket closes) is lost, and every survivor prints one line naming it and
exits with `EXIT_LOST`. JAX's own heartbeat is set to twice that, so this line comes before JAX's fatal abort.

The coordination service itself runs in a process of its own (`serve`, started by process 0 in a new session), not
inside process 0 where `jax.distributed.initialize` would put it: there, killing process 0 took the service with it
and JAX aborted every other process at once with its own fatal message (its client's error callback cannot be a
Python function in this jaxlib). Beside process 0, the service outlives it: process 0 is watched like any other, and
the service stops on its own once process 0 has ended and no process holds a connection to it any more, at most
`SERVICE_END_S` after process 0's clean end (JAX's shutdown barrier has passed) or `peer_timeout + 5 * BEAT_S` after
any other (time for every survivor to see process 0's silence and stop). A rerun on the same port waits for the port
(gRPC would otherwise share it with the old service).
"""

import contextlib
import errno
import os
import signal
import socket
import subprocess
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
SERVICE_END_S = 2.5 * BEAT_S  # how long the service outlives process 0's clean end (the others' last RPCs)
SHUTDOWN_TIMEOUT_S = 300  # JAX's shutdown barrier (jax.distributed.initialize's default)


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
  address, count, process, device_ids = ((coordinator_address, num_processes, process_id, None) if given
                                         else _detected_cluster())
  heartbeat = 2 * peer_timeout
  service = (CoordinationService(address, count, heartbeat, linger=peer_timeout + 5 * BEAT_S) if process == 0
             else None)
  with _service_given(service):
    jax.distributed.initialize(address, count, process, device_ids, heartbeat_timeout_seconds=heartbeat)
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
        self.stop_job([0], f"the coordination service beside it stopped answering ({str(e).splitlines()[0]})")
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


def _detected_cluster() -> tuple:
  """(coordinator address, process count, process id, local device ids) as `jax.distributed.initialize()` would
  detect them (TPU pod metadata, SLURM's environment), read here first because process 0 must know it is process 0
  before JAX starts; all None outside a known cluster, which JAX then reports."""
  from jax._src import clusters
  return clusters.ClusterEnv.auto_detect_unset_distributed_params(os.environ.get("JAX_COORDINATOR_ADDRESS"), None,
                                                                  None, None, None, 300)


@contextlib.contextmanager
def _service_given(service: "CoordinationService | None"):
  """While it runs, `jax.distributed.initialize` on process 0 takes `service`, already serving in a process of its
  own, where it would otherwise start the coordination service inside process 0 (and lose it with process 0)."""
  if service is None:
    yield
    return
  from jax._src import distributed
  start = distributed._jax.get_distributed_runtime_service
  distributed._jax.get_distributed_runtime_service = lambda *args, **kwargs: service
  try:
    yield
  finally:
    distributed._jax.get_distributed_runtime_service = start


class CoordinationService:
  """Process 0's handle on JAX's coordination service, run by `serve` in a child process of its own session (module
  docstring). JAX calls `shutdown` at exit once every process has passed its shutdown barrier."""

  def __init__(self, coordinator_address: str, count: int, heartbeat: int, linger: float):
    port = coordinator_address.rsplit(":", 1)[1]
    self.bind = os.environ.get("JAX_COORDINATOR_BIND_ADDRESS", f"[::]:{port}")  # where JAX itself would bind
    if port_busy(self.bind):
      print(f"port {port} is in use (an earlier run's coordination service stops when its last process has ended); "
            f"waiting up to {linger:g} s", file=sys.stderr, flush=True)
    argv = [sys.executable, "-m", "mtl_jax.distributed", self.bind, str(count), str(heartbeat), str(linger)]
    self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, env=_importable_env())  # Ctrl-C on the group spares it
    answer = self.process.stdout.readline().decode().strip()
    if answer != "ready":
      said = self.process.communicate()[1].decode().strip().splitlines() or [f"exit code {self.process.returncode}"]
      why = (f"port {port} on this host is still in use after {linger:g} s (another run's coordination service?)"
             if answer == "busy" else f"JAX's coordination service did not start on {self.bind}: {said[-1]}")
      raise UserError(f"--coordinator_address: {why}")
    self.process.stdout.close()
    self.process.stderr.close()

  def shutdown(self) -> None:
    """A clean end: the service may stop as soon as the others have had their last answers."""
    with contextlib.suppress(OSError):  # it is gone already
      self.process.stdin.write(_DONE.encode())
      self.process.stdin.close()


def _importable_env() -> dict[str, str]:
  """This process's environment, where the service's process imports this same mtl_jax: sys.path[1:] comes from the
  environment and site-packages, which it inherits; only a package found through the working directory, which may
  have changed since, needs its place on PYTHONPATH (never site-packages there: ahead of the standard library)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if root in map(os.path.abspath, sys.path[1:]):
    return dict(os.environ)
  return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def cpu_devices_env(n: int) -> dict[str, str]:
  """This environment for a child process with `n` simulated CPU devices (processes of a run on one host, the device
  benchmarks, the tests): the count appended to the caller's XLA_FLAGS, which stay (the last count wins)."""
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()
  return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}


def port_busy(bind: str) -> bool:
  """Whether something listens on `bind` (host:port). gRPC binds with SO_REUSEPORT, so a second coordination service
  on a port still served by an earlier run's would share its connections instead of failing: ask the kernel first."""
  host, port = bind.rsplit(":", 1)
  host = host.strip("[]")
  try:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: closed connections do not count
      s.bind((host, int(port)))
  except OSError as e:
    return e.errno == errno.EADDRINUSE
  return False


def serve(bind: str, count: str, heartbeat: str, linger: str) -> None:
  """The coordination service's own process: it answers `ready` (or `busy`, the port still taken after `linger`),
  then serves until process 0 and the others have ended (`outlive_process_0`). Signals that stop a run leave it be:
  on SIGTERM (a preemption) the others still save through it, and a service gone before the survivors of a killed
  process 0 have seen its silence would make JAX abort them with its own message."""
  for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
  deadline = time.monotonic() + float(linger)
  while port_busy(bind) and time.monotonic() < deadline:
    time.sleep(0.5)
  if port_busy(bind):
    print("busy", flush=True)
    return
  from jax._src.lib import _jax
  service = _jax.get_distributed_runtime_service(bind, int(count), heartbeat_timeout=int(heartbeat),
                                                 shutdown_timeout=SHUTDOWN_TIMEOUT_S)
  outlive_process_0(service, int(bind.rsplit(":", 1)[1]), float(linger))


def outlive_process_0(service, port: int, linger: float) -> None:
  """Holds `service` until process 0 has ended (its end of our stdin closes) and then until no client holds a
  connection any more (the others stopped too), at most `SERVICE_END_S` more after a clean end and `linger` more
  after any other: the port is free for the next run as soon as the last process of this one is gone."""
  print("ready", flush=True)
  with open(os.devnull, "wb") as null:  # nobody reads the pipes any more; the service's own log is not the user's
    os.dup2(null.fileno(), 1)
    os.dup2(null.fileno(), 2)
  clean = sys.stdin.buffer.read() == _DONE.encode()
  deadline = time.monotonic() + (SERVICE_END_S if clean else linger)
  while time.monotonic() < deadline and clients_connected(port) != 0:
    time.sleep(0.5)
  os._exit(0)  # not service.shutdown(): it would wait for the long polls of clients that are gone


def clients_connected(port: int) -> int | None:
  """How many established TCP connections to `port` this process holds, from Linux's /proc (None elsewhere: the
  caller then waits its full time). A client process that ends, killed or not, closes its connection."""
  own = set()
  try:
    for fd in os.listdir("/proc/self/fd"):
      with contextlib.suppress(OSError):  # an fd closed meanwhile
        own.add(os.readlink(f"/proc/self/fd/{fd}").removeprefix("socket:[").removesuffix("]"))
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
      with open(table) as f:
        rows += [line.split() for line in f.readlines()[1:]]
  except OSError:
    return None
  return sum(int(r[1].rsplit(":", 1)[1], 16) == port and r[3] == "01" and r[9] in own for r in rows)  # 01: ESTABLISHED


if __name__ == "__main__":
  serve(*sys.argv[1:])
