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
