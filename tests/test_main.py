"""The command line: config mistakes exit 2 with one line, no traceback."""

import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.parametrize("args,message", [
    (["--config.train.stpes=3"], "error: --config.train.stpes: no such config field (did you mean 'steps'?)"),
    (["--config.train.steps=abc"], "error: flag --config.train.steps=abc: invalid literal for int()"),
    (["--config=configs/missing.py"], "No such file or directory: 'configs/missing.py'"),
    (["--config=configs/three_task.py:bogus"], "unknown config argument 'bogus'"),
])
def test_config_mistakes_exit_2_with_one_line(args, message, tmp_path):
  out = subprocess.run([sys.executable, "-m", "mtl_jax.main", "--config=configs/three_task.py:smoke",
                        f"--workdir={tmp_path}", *args], capture_output=True, text=True, cwd=REPO)
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert out.returncode == 2 and len(lines) == 1 and message in lines[0], out.stderr[-2000:]
  assert "Traceback" not in out.stderr
