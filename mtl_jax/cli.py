"""What every command-line entry point does: quiet transformers, the host allocator setting, a persistent cache of
compiled steps, and user errors as one line with exit code 2 (anything else is a bug and keeps its traceback)."""

import contextlib
import os
import sys

from mtl_jax import host_memory, token_cache
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
  compilation_cache()
  app.run(main, **kwargs)


def compilation_cache() -> None:
  """JAX's persistent cache of compiled programs, in mtl_jax's cache folder unless JAX_COMPILATION_CACHE_DIR names
  one: a second run of a config (or evaluate, predict) loads its compiled steps instead of compiling them again,
  which with the token cache lets it start in seconds (benchmarks/data.py). A cached program computes exactly what
  a fresh compile does."""
  import jax
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.path.join(token_cache.cache_root(), "xla"))
