"""Faults lose nothing: a crash, SIGKILL or SIGTERM at any step, then the same command, ends as an uninterrupted run
(bitwise-equal params on CPU, the same metrics history); NaN/inf never reaches a checkpoint."""

import os
import random
import re
import shutil
import signal
import time

import jax
import numpy as np
import pytest
from runs import assert_same_run, crash_in_step, latest_params, read_history, smoke, start_training

from mtl_jax import checkpoint
from mtl_jax.errors import UserError
from mtl_jax.train import train_and_evaluate


def latest_step(workdir):
  return checkpoint.manager(os.path.join(workdir, checkpoint.LATEST), create=False).latest_step()


def test_crash_in_a_step_then_the_same_command_is_exact(table, tmp_path, monkeypatch):
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  final = train_and_evaluate(smoke(table), full)
  crash_in_step(6, smoke(table), split, monkeypatch)  # after the step-4 checkpoint
  assert latest_step(split) == 4
  assert train_and_evaluate(smoke(table), split) == final
  assert_same_run(split, full)


def test_sigkill_at_an_arbitrary_step_then_resume_is_exact(table, tmp_path):
  """SIGKILL lands anywhere, also inside a checkpoint write (one every 3 steps); the next run picks the last complete
  checkpoint and ends as the uninterrupted run."""
  overrides = {"train.steps": 120, "train.eval_every": 60, "train.log_every": 7, "train.checkpoint_every": 3}
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table, **overrides), full)
  proc = start_training(table, split, **overrides)
  delay = random.uniform(0.0, 1.0)
  time.sleep(delay)
  proc.kill()
  proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  killed_at = latest_step(split)
  assert killed_at is None or killed_at < 120, f"the run finished before the kill ({delay:.2f} s)"
  train_and_evaluate(smoke(table, **overrides), split)
  assert_same_run(split, full)


def test_a_half_written_checkpoint_is_never_the_latest(table, tmp_path, monkeypatch):
  """What a kill inside orbax's write leaves (a step directory under its temporary name, files cut short) is ignored
  on resume."""
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table), full)
  crash_in_step(7, smoke(table), split, monkeypatch)
  latest = os.path.join(split, checkpoint.LATEST)
  torn = os.path.join(latest, "6.orbax-checkpoint-tmp-1234")
  shutil.copytree(os.path.join(latest, "4"), torn)
  for root, _, files in os.walk(torn):
    for name in files:
      os.truncate(os.path.join(root, name), os.path.getsize(os.path.join(root, name)) // 2)
  assert latest_step(split) == 4
  train_and_evaluate(smoke(table), split)
  assert_same_run(split, full)


def test_sigterm_saves_at_a_step_boundary_and_resume_is_exact(table, tmp_path):
  overrides = {"train.steps": 60, "train.eval_every": 30, "train.log_every": 7}
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table, **overrides), full)
  proc = start_training(table, split, **overrides)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-2000:]
  stopped = latest_step(split)
  assert 7 <= stopped < 60 and f"SIGTERM: saved step {stopped}" in out
  train_and_evaluate(smoke(table, **overrides), split)  # the same command again resumes and finishes
  assert_same_run(split, full)


def test_resume_from_a_checkpoint_between_log_events_is_exact(table, tmp_path, monkeypatch):
  """checkpoint_every=10 with log_every=7: the step-10 checkpoint carries the half-full train-loss window."""
  overrides = {"train.steps": 16, "train.eval_every": 16, "train.log_every": 7, "train.checkpoint_every": 10}
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table, **overrides), full)
  crash_in_step(13, smoke(table, **overrides), split, monkeypatch)
  assert latest_step(split) == 10
  train_and_evaluate(smoke(table, **overrides), split)
  assert_same_run(split, full)


def test_non_finite_loss_stops_with_the_step_and_saves_nothing_after_it(table, tmp_path):
  overrides = {"train.steps": 12, "train.eval_every": 100, "train.log_every": 5, "train.checkpoint_every": 1,
               "train.learning_rate": 1e30, "train.grad_clip": 0.0, "train.warmup_steps": 0}
  with pytest.raises(UserError, match=r"non-finite training loss by step (\d+) \(task losses") as info:
    train_and_evaluate(smoke(table, **overrides), str(tmp_path))
  failed = int(re.search(r"by step (\d+)", str(info.value)).group(1))
  saved = latest_step(str(tmp_path))
  assert saved is None or saved < failed
  if saved is not None:  # what was saved is finite
    params = latest_params(str(tmp_path))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
  if os.path.exists(tmp_path / "metrics.jsonl"):  # no event from the failing window
    assert all(h["step"] < failed for h in read_history(str(tmp_path)))
