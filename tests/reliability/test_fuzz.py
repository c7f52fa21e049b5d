"""Fuzzing every reader: arbitrary bytes (random, gzip-wrapped, or assembled from the formats' own tokens) either
read or raise our UserError, never another exception."""

import gzip
import json

import hypothesis
import pytest
from hypothesis import strategies as st

from mtl_jax.data import read_table
from mtl_jax.errors import UserError
from mtl_jax.predict import read_conll_input, read_jsonl_inputs
from mtl_jax.readers import (
  read_conll,
  read_conllu,
  read_label_list,
  read_mapping,
  read_paired_text_labels,
  read_text_classification,
)
from mtl_jax.tasks import Layout, Task

TOKENS = ["a", "B-X", "O", " ", "\t", "\n", "\r", "#", "-", "1", "2", "1-2", "1.1", ".", "_", '"', ",", "{", "}", ":",
          "[", "]", "\\", "-DOCSTART-", '"text"', '"label"', '"labels"', '"weight"', "null", "true", "-1", "1e999",
          '"words"', "0.5", "text", "label", "labels", "weight", "sentiment", "topic", "\u2028", "\x00", "é", "\xff"]
CONTENTS = st.one_of(st.binary(max_size=300),
                     st.lists(st.sampled_from(TOKENS), max_size=80).map(lambda parts: "".join(parts).encode()),
                     st.binary(max_size=200).map(gzip.compress))
LAYOUT = Layout((Task("sentiment", "classification", ("neg", "pos")), Task("topic", "classification", ("a", "b", "c"))))

READERS = {
    "a.conll": lambda p: read_conll(p, {"ner": 1}),
    "t.conll": lambda p: read_conll(p, {"ner": 1}, separator="\t"),
    "a.conllu": read_conllu,
    "a.csv": lambda p: read_text_classification(p, ("text",), "label"),
    "h.csv": lambda p: read_text_classification(p, (0, 2), 1, header=False, backslash_escapes=True),
    "a.jsonl": lambda p: read_text_classification(p, ("text",), "label", label_names={"1": "one"}),
    "m.txt": read_mapping,
    "c.txt": read_label_list,
    "table.jsonl": lambda p: read_table(p, LAYOUT),
    "table.csv": lambda p: read_table(p, LAYOUT),
    "table.jsonl.gz": lambda p: read_table(p, LAYOUT),
    "predict.conll": lambda p: read_conll_input(p, 1),  # mtl_jax.predict's inputs
    "predict.jsonl": read_jsonl_inputs,
}


def write(folder, name: str, content: bytes) -> str:
  path = folder / name
  path.write_bytes(content)
  return str(path)


@pytest.mark.parametrize("name", sorted(READERS) + ["paired"])
@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(content=CONTENTS, labels=CONTENTS)
def test_arbitrary_bytes_read_or_raise_user_error(tmp_path_factory, name, content, labels):
  root = tmp_path_factory.getbasetemp() / "fuzz"  # one folder for all examples: files are overwritten
  root.mkdir(exist_ok=True)
  try:
    if name == "paired":
      read_paired_text_labels(write(root, "t.txt", content), write(root, "l.txt", labels), {"1": "one"})
    else:
      READERS[name](write(root, name, content))
  except UserError:
    pass


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(rows=st.lists(st.fixed_dictionaries(
    {"text": st.one_of(st.text(max_size=5), st.integers(), st.none()),
     "labels": st.one_of(st.lists(st.one_of(st.integers(-3, 4), st.floats(), st.booleans(), st.none(),
                                            st.sampled_from(["neg", "pos", "a", "zz", ""])), max_size=3),
                         st.integers(), st.text(max_size=3))},
    optional={"weight": st.one_of(st.floats(), st.integers(-2, 3), st.lists(st.floats(-1, 2), max_size=3))}),
    min_size=1, max_size=5))
def test_table_rows_of_any_json_values_read_or_raise_user_error(tmp_path_factory, rows):
  """Well-formed JSON with wrong types and values in every field: validated row by row, never a crash."""
  path = tmp_path_factory.getbasetemp() / "rows.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  try:
    table = read_table(str(path), LAYOUT)
  except UserError:
    return
  assert len(table) == len(rows) and ((table.labels >= -1) & (table.labels < [2, 3])).all()
  assert (table.weights >= 0).all()
