"""One run per workdir: a second run on a busy workdir exits 2 with one line naming the holder; a killed run's lock is
taken over by the next run (real processes: the lock is the kernel's, per process)."""

import os
import re
import signal
import subprocess
import sys

from runs import REPO, smoke, start_training

from mtl_jax.train import train_and_evaluate

LONG = {"train.steps": 100000, "train.eval_every": 100000, "train.log_every": 2}  # runs until killed


def test_second_run_on_a_busy_workdir_is_refused_and_a_killed_runs_lock_is_taken_over(table, tmp_path):
  workdir = str(tmp_path / "run")
  first = start_training(table, workdir, **LONG)
  try:
    second = subprocess.run(
        [sys.executable, "-m", "mtl_jax.main", "--config=configs/three_task.py:smoke", f"--workdir={workdir}",
         f"--config.data.train={table}", "--config.data.validation=0.25"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr[-2000:]
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"error: {re.escape(workdir)}: in use by another run \(host \S+, pid {first.pid}, started [^)]+\); wait for "
        r"it to end or use another --workdir", lines[0]), lines
    assert first.poll() is None  # the first run goes on
  finally:
    first.kill()
    first.communicate(timeout=60)
  assert first.returncode == -signal.SIGKILL
  train_and_evaluate(smoke(table, **{"train.steps": 2, "train.eval_every": 2}), workdir)  # the dead run's lock
  with open(os.path.join(workdir, ".lock.0")) as f:
    assert f'"pid": {os.getpid()}' in f.read()
