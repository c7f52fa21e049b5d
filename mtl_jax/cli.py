"""What every command-line entry point does: quiet transformers, the host allocator setting, and user errors as one
line with exit code 2 (anything else is a bug and keeps its traceback)."""

import contextlib
import os
import sys

from mtl_jax import host_memory
from mtl_jax.errors import UserError


@contextlib.contextmanager
def user_errors():
  """A UserError inside becomes `error: <message>` on stderr and exit code 2."""
  try:
    yield
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def run(main, **kwargs) -> None:
  """absl's app.run(main), after the process-wide settings an entry point makes before JAX initialises its backend."""
  from absl import app
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" banner
  host_memory.keep_freed_memory()  # see mtl_jax/host_memory.py
  app.run(main, **kwargs)
