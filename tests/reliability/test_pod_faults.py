"""Faults of one process in a multi-process run, with two processes started by hand as SLURM or a TPU pod starts
them (no launcher to supervise them): a killed process, process 0 included, stops the other with one line
(mtl_jax/distributed.py), SIGTERM on either one saves the same step on both, and the same launch then ends as an
uninterrupted run, bitwise."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from runs import REPO, assert_same_run, make_table

from mtl_jax import checkpoint, distributed

OVERRIDES = {"train.steps": 40, "train.eval_every": 20, "train.log_every": 5, "train.checkpoint_every": 10}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_pod(table, workdir, logs) -> list[subprocess.Popen]:
  """Two `mtl_jax.main` processes of one CPU device each, joined through a coordinator on a free port; each writes
  its output to `logs/process_<i>.txt`."""
  os.makedirs(logs, exist_ok=True)
  env = distributed.cpu_devices_env(1)
  args = ["--config=configs/three_task.py:smoke", f"--workdir={workdir}", f"--config.data.train={table}",
          "--config.data.validation=0.25", *(f"--config.{k}={v}" for k, v in OVERRIDES.items()),
          f"--coordinator_address=127.0.0.1:{free_port()}", "--num_processes=2"]
  procs = []
  for i in range(2):
    with open(os.path.join(logs, f"process_{i}.txt"), "w") as out:
      procs.append(subprocess.Popen([sys.executable, "-m", "mtl_jax.main", *args, f"--process_id={i}"], cwd=REPO,
                                    stdout=out, stderr=subprocess.STDOUT, env=env))
  return procs


def finish(procs, timeout) -> list[int]:
  return [p.wait(timeout=timeout) for p in procs]


def wait_for(condition, procs, what):
  deadline = time.time() + 300
  while not condition():
    assert all(p.poll() is None for p in procs), f"a process ended before {what}"
    assert time.time() < deadline, f"no {what} after 300 s"
    time.sleep(0.05)


def saved_steps(workdir) -> list[int]:
  folder = os.path.join(workdir, checkpoint.LATEST)
  return sorted(int(name) for name in os.listdir(folder) if name.isdigit()) if os.path.isdir(folder) else []


def logged_step(workdir) -> int:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return max((json.loads(line)["step"] for line in f if line.endswith("\n")), default=0)


def output(logs, i) -> str:
  with open(os.path.join(logs, f"process_{i}.txt")) as f:
    return f.read()


@pytest.fixture(scope="session")  # once per worker (a module fixture is made again after another module's tests)
def pod(tmp_path_factory):
  """The table the tests train on, and the uninterrupted two-process run on it."""
  root = tmp_path_factory.mktemp("pod")
  table, workdir = make_table(root / "train.jsonl", 160), str(root / "uninterrupted")
  codes = finish(start_pod(table, workdir, workdir + "_logs"), timeout=300)
  assert codes == [0, 0], output(workdir + "_logs", 0)[-3000:]
  return table, workdir


def complaints(text) -> list[str]:
  """The lines a user reads as errors: ours (`error: ...`) and the errors and fatal aborts of JAX's C++ log."""
  return [line for line in text.splitlines() if re.match(r"error:|[EF]\d{4} ", line)]


def stop_by_kill(procs, victim, logs) -> str:
  """SIGKILLs process `victim` and returns the survivor's output once it stopped, within the 60 s promised."""
  procs[victim].kill()
  killed_at = time.monotonic()
  code = procs[1 - victim].wait(timeout=60)
  print(f"process {1 - victim} stopped {time.monotonic() - killed_at:.1f} s after process {victim} was killed")
  procs[victim].wait()
  text = output(logs, 1 - victim)
  assert code == distributed.EXIT_LOST, text[-3000:]
  return text


def test_a_killed_process_stops_the_other_then_the_same_launch_resumes_exactly(pod, tmp_path):
  """Process 1 killed mid-run, the same launch resumed, then process 0 killed (the coordination service lives in a
  process of its own, so losing process 0 is like losing any other): each time the survivor prints the watchdog's
  one line within 60 s; the third launch ends as the uninterrupted run. One test, so both kills share the resumes."""
  (table, uninterrupted), workdir = pod, str(tmp_path / "run")
  for victim in (1, 0):
    logs, last = str(tmp_path / f"kill_{victim}"), (saved_steps(workdir) or [0])[-1]
    procs = start_pod(table, workdir, logs)
    wait_for(lambda: (saved_steps(workdir) or [0])[-1] > last and logged_step(workdir) > saved_steps(workdir)[-1],
             procs, "a new checkpoint")
    text, survivor = stop_by_kill(procs, victim, logs), 1 - victim
    last_line = text.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: process {survivor}: lost process {victim} of 2 \(no sign of life for (6|30) s\); "
                        r"stopping\. Run the same launch again to resume from the last complete checkpoint",
                        last_line), text[-2000:]
    assert complaints(text) == [last_line] and "Traceback" not in text, text[-3000:]
    assert last < saved_steps(workdir)[-1] < OVERRIDES["train.steps"]
  assert finish(start_pod(table, workdir, str(tmp_path / "again")), timeout=300) == [0, 0]
  assert_same_run(workdir, uninterrupted)


def test_sigterm_on_one_process_saves_the_same_step_on_all_and_resume_is_exact(pod, tmp_path):
  """SIGTERM on process 1, which does not print: the processes agree at a log step (`run_state.Preemption`)."""
  (table, uninterrupted), workdir, logs = pod, str(tmp_path / "run"), str(tmp_path / "logs")
  procs = start_pod(table, workdir, logs)
  wait_for(lambda: logged_step(workdir) >= 5, procs, "first log event")
  procs[1].send_signal(signal.SIGTERM)
  assert finish(procs, timeout=120) == [0, 0], output(logs, 0)[-3000:]
  stopped = saved_steps(workdir)[-1]
  assert stopped < OVERRIDES["train.steps"] and stopped % OVERRIDES["train.log_every"] == 0
  assert f"SIGTERM: saved step {stopped}" in output(logs, 0)
  assert finish(start_pod(table, workdir, str(tmp_path / "again")), timeout=300) == [0, 0]
  assert_same_run(workdir, uninterrupted)
