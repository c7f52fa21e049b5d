"""Shared fixtures: a small three-task layout, the packaged MiniLM directory, and a writable table helper."""

import json
import os

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from mtl_jax.tasks import Layout, Task  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
