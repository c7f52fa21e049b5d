"""A checkpoint or metrics write the filesystem refuses (here: a file-size limit, so writes fail with EFBIG as they
fail with ENOSPC on a full disk) stops the run with an error naming the path; the checkpoint before it stays the
latest, and the same command with room ends as an uninterrupted run."""

import errno
import os
import re
import subprocess

import pytest
from runs import REPO, assert_same_run, crash_in_step, smoke, train_command
from tensorboardX.record_writer import RecordWriter

from mtl_jax import checkpoint, run_state
from mtl_jax.errors import UserError
from mtl_jax.train import train_and_evaluate

OVERRIDES = {"train.steps": 8, "train.eval_every": 4, "train.log_every": 2}


def limited(script: str, max_bytes: int) -> str:
  """`script` in a child whose files stop growing at `max_bytes`: a write past that fails (EFBIG), as on a full disk,
  instead of raising SIGXFSZ."""
  return ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
          f"resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, {max_bytes}))\n" + script)


def run_limited(table: str, workdir: str, max_bytes: int, **overrides) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # its files pass the limit too
  *python, script = train_command(table, workdir, **overrides)
  return subprocess.run([*python, limited(script, max_bytes)], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300)


def test_a_refused_checkpoint_write_stops_the_run_and_the_same_command_resumes(table, tmp_path, monkeypatch):
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table, **OVERRIDES), full)
  crash_in_step(6, smoke(table, **OVERRIDES), split, monkeypatch)  # the step-4 checkpoint is the latest
  child = run_limited(table, split, 2**20, **OVERRIDES)  # 1 MiB: the encoder's embedding alone is 4 MB
  assert child.returncode != 0, child.stderr[-2000:]
  assert re.search(rf"{re.escape(split)}/best: cannot write the checkpoint of step 8 \(File too large\); the last "
                   r"complete checkpoint stays the latest", child.stderr), child.stderr[-2000:]
  latest = checkpoint.manager(os.path.join(split, checkpoint.LATEST), create=False)
  assert latest.latest_step() == 4
  train_and_evaluate(smoke(table, **OVERRIDES), split)  # with room again
  assert_same_run(split, full)


def test_a_refused_metrics_write_stops_the_run_and_the_same_command_starts_over_exactly(table, tmp_path, monkeypatch):
  """An injected writer: the third append to metrics.jsonl (step 4's evaluation, before any checkpoint) fails as on a
  full disk."""
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table, **OVERRIDES), full)
  appends = []

  def full_disk_open(path, mode="r", *args, **kwargs):
    if mode == "a" and len(appends) == 2:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    appends.append(mode == "a")
    return open(path, mode, *args, **kwargs)

  monkeypatch.setattr(run_state, "open", full_disk_open, raising=False)  # found before the builtin
  with pytest.raises(UserError, match=rf"^{re.escape(split)}/metrics.jsonl: cannot write step 4's metrics \(No space "
                                      r"left on device\); the checkpoints are as they were"):
    train_and_evaluate(smoke(table, **OVERRIDES), split)
  monkeypatch.undo()
  assert checkpoint.manager(os.path.join(split, checkpoint.LATEST), create=False).latest_step() is None
  train_and_evaluate(smoke(table, **OVERRIDES), split)  # with room again: starts over, ends as the uninterrupted run
  assert_same_run(split, full)


def test_a_refused_tensorboard_write_stops_the_run_and_the_same_command_resumes(table, tmp_path, monkeypatch):
  """Injected: the event file's flushes fail as on a full disk from step 6's log event on (after the step-4
  checkpoint)."""
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  overrides = {**OVERRIDES, "train.checkpoint_every": 4}
  train_and_evaluate(smoke(table, **overrides), full)
  steps, real_write, real_flush = [], run_state.MetricsLog.write, RecordWriter.flush

  def logging(self, step, values):
    steps.append(step)
    real_write(self, step, values)

  def full_disk_flush(self):
    if steps and steps[-1] >= 6:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_flush(self)

  monkeypatch.setattr(run_state.MetricsLog, "write", logging)
  monkeypatch.setattr(RecordWriter, "flush", full_disk_flush)
  with pytest.raises(UserError, match=rf"^{re.escape(split)}/tensorboard: cannot write step 6's metrics \(No space "
                                      r"left on device\); the checkpoints are as they were"):
    train_and_evaluate(smoke(table, **overrides), split)
  monkeypatch.undo()
  assert checkpoint.manager(os.path.join(split, checkpoint.LATEST), create=False).latest_step() == 4
  train_and_evaluate(smoke(table, **overrides), split)
  assert_same_run(split, full)
