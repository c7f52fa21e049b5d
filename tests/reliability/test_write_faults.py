"""A checkpoint the filesystem refuses to write (here: a file-size limit, so writes fail with EFBIG as they fail with
ENOSPC on a full disk) stops the run with exit code 2 and an error naming the directory; the checkpoint before it
stays the latest, and the same command with room resumes exactly."""

import os
import re
import subprocess

from runs import REPO, assert_same_run, crash_in_step, smoke, train_command

from mtl_jax import checkpoint
from mtl_jax.train import train_and_evaluate

OVERRIDES = {"train.steps": 8, "train.eval_every": 4, "train.log_every": 2}


# Prepended to the child's script: its files stop growing at 1 MiB (the encoder's embedding alone is 4 MB), and a write
# past that fails (EFBIG) instead of raising SIGXFSZ.
SMALL_FILES_ONLY = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                    "resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))\n")


def test_a_refused_checkpoint_write_stops_the_run_and_the_same_command_resumes(table, tmp_path, monkeypatch):
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table, **OVERRIDES), full)
  crash_in_step(6, smoke(table, **OVERRIDES), split, monkeypatch)  # the step-4 checkpoint is the latest
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # its files pass 1 MiB too
  *python, script = train_command(table, split, **OVERRIDES)
  limited = subprocess.run([*python, SMALL_FILES_ONLY + script], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300)
  assert limited.returncode != 0, limited.stderr[-2000:]
  assert re.search(rf"{re.escape(split)}/best: cannot write the checkpoint of step 8 \(File too large\); the last "
                   r"complete checkpoint stays the latest", limited.stderr), limited.stderr[-2000:]
  latest = checkpoint.manager(os.path.join(split, checkpoint.LATEST), create=False)
  assert latest.latest_step() == 4
  train_and_evaluate(smoke(table, **OVERRIDES), split)  # with room again
  assert_same_run(split, full)
