"""Shared fixtures: a small three-task layout, a learnable table, a JSONL writer, and the shared real corpora."""

import atexit
import json
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# The suite's models are tiny: there glibc's single arena (mtl_jax/host_memory.py) costs more in lock contention
# between XLA's threads than it saves in page faults (tests/test_train.py: 55 s without it, 65 s with it). Off for
# the entry points (CLIs, benchmarks) the tests start; tests/test_host_memory.py turns it on where it is tested.
os.environ.setdefault("MTL_JAX_KEEP_HOST_MEMORY", "0")
# One persistent XLA compilation cache for the session, this process and the subprocesses it starts: the many smoke
# runs compile the same steps, and a cached executable computes exactly what a fresh compile does.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="mtl_jax_xla_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
# The token cache (mtl_jax/token_cache.py) of the session's runs in a temporary folder, not the user's ~/.cache.
if "MTL_JAX_CACHE" not in os.environ:
  os.environ["MTL_JAX_CACHE"] = tempfile.mkdtemp(prefix="mtl_jax_token_cache_")
  atexit.register(shutil.rmtree, os.environ["MTL_JAX_CACHE"], ignore_errors=True)
# XLA:CPU compiles without LLVM's optimisation passes: the suite's steps are tiny and compiled by the hundred, and
# compiling is most of a smoke run (a 5-step run: 16.6 s of compiles at the default level, 7.2 s at 0; same losses).
# The subprocesses the tests start inherit it; tests that set XLA_FLAGS append to it (`mtl_jax.distributed.cpu_devices_env`).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

from runs import REPO, make_table, named_config  # noqa: E402

from mtl_jax.tasks import Layout, Task  # noqa: E402
from mtl_jax.train import train_and_evaluate  # noqa: E402


@pytest.fixture
def layout() -> Layout:
  return Layout((Task("sentiment", "classification", ("negative", "neutral", "positive")),
                 Task("urgency", "classification", ("low", "high"), weight=0.5, label_smoothing=0.1),
                 Task("topic", "classification", ("billing", "technical", "shipping", "account"))))


@pytest.fixture
def write_jsonl(tmp_path):
  """Writes rows (dicts, or raw strings written as they are) to a JSONL file and returns its path."""
  def write(rows, name="table.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)
  return write

DATA_ROOT = os.environ.get("MTL_JAX_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))


@pytest.fixture(scope="session")
def shared_data() -> str:
  """The real corpora in ../shared/data. Missing: a failure in CI, a skip on a developer machine without them."""
  if not os.path.isdir(DATA_ROOT):
    if os.environ.get("CI"):
      pytest.fail(f"{DATA_ROOT} is missing; CI must run with ../shared/data beside the repo")
    pytest.skip(f"{DATA_ROOT} not present (set MTL_JAX_DATA)")
  return DATA_ROOT


@pytest.fixture(scope="module")
def table(tmp_path_factory):
  """A learnable three-task table of 160 rows (`runs.make_table`)."""
  return make_table(tmp_path_factory.mktemp("data") / "train.jsonl", 160)


@pytest.fixture(scope="session")
def tokenizer():
  """The packaged MiniLM's tokenizer (the default encoder's, and the random presets')."""
  from mtl_jax.encoder import DEFAULT_PRETRAINED, resolve_encoder_dir
  from mtl_jax.tokenizer import load_tokenizer
  return load_tokenizer(resolve_encoder_dir(DEFAULT_PRETRAINED))


@pytest.fixture(scope="session")
def pos_chunk_run(shared_data, tmp_path_factory):
  """configs/pos_chunk.py:smoke as tests/test_corpora.py trains it, once per test process: a checkpoint with two
  taggers, UPOS (per-tag table) and chunks (CoNLL-2000, IOB2 spans), for evaluate and predict. (config, workdir,
  the final metrics train_and_evaluate returned)."""
  config = named_config("pos_chunk")
  config.data.root = shared_data
  workdir = str(tmp_path_factory.mktemp("pos_chunk_run"))
  return config, workdir, train_and_evaluate(config, workdir)
