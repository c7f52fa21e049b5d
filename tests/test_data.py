"""Table readers: valid rows in JSONL and CSV, and one clear error naming file, row and field for bad input."""

import json

import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import Table, read_chunks, read_table, split_validation, validation_count
from mtl_jax.errors import UserError
from mtl_jax.tasks import Layout, Task


def test_jsonl_rows_labels_missing_and_weights(layout, write_jsonl):
  path = write_jsonl([
      {"text": "refund please", "labels": [0, 1, 0]},
      {"text": "app crashes", "labels": [None, "high", 1], "weight": 2.0},
      {"text": "thanks!", "labels": ["positive", -1, 3], "weight": [1, 0.5, 3]},
  ])
  table = read_table(path, layout)
  assert table.texts == ["refund please", "app crashes", "thanks!"]
  np.testing.assert_array_equal(table.labels, [[0, 1, 0], [-1, 1, 1], [2, -1, 3]])
  np.testing.assert_array_equal(table.weights, [[1, 1, 1], [2, 2, 2], [1, 0.5, 3]])


def test_csv_with_labels_column_and_multiline_text(layout, tmp_path):
  path = tmp_path / "t.csv"
  path.write_text('text,labels,weight\n"line one\nline two, with comma","[1, 0, 2]",\nshort,"[2, null, 0]",0.5\n')
  table = read_table(str(path), layout)
  assert table.texts == ["line one\nline two, with comma", "short"]
  np.testing.assert_array_equal(table.labels, [[1, 0, 2], [2, -1, 0]])
  np.testing.assert_array_equal(table.weights[:, 0], [1, 0.5])


def test_csv_with_one_column_per_task(layout, tmp_path):
  path = tmp_path / "t.csv"
  path.write_text("topic,text,sentiment,urgency\nshipping,where is it,negative,\n0,ok,1,high\n")
  table = read_table(str(path), layout)
  np.testing.assert_array_equal(table.labels, [[0, -1, 2], [1, 1, 0]])


BAD_JSONL = [
    ({"text": "a", "labels": [0, 1]}, r"table.jsonl:2: field 'labels': expected 3 entries"),
    ({"text": "a", "labels": [0, 1, 4]}, r"table.jsonl:2: field 'labels'\[2\] \(task 'topic'\).*0\.\.3.*found 4"),
    ({"text": "a", "labels": [0, 1.5, 0]}, r"table.jsonl:2: field 'labels'\[1\] \(task 'urgency'\).*found 1.5"),
    ({"text": "a", "labels": [0, True, 0]}, r"table.jsonl:2: field 'labels'\[1\].*found True"),
    ({"text": "a", "labels": [0, 1, "sports"]}, r"table.jsonl:2: field 'labels'\[2\].*found 'sports'"),
    ({"text": "a", "labels": [-2, 1, 0]}, r"table.jsonl:2: field 'labels'\[0\].*found -2"),
    ({"text": "a", "labels": 3}, r"table.jsonl:2: field 'labels': expected a list"),
    ({"text": "a", "labels": [0, 1, 0], "weight": [1, 2]}, r"table.jsonl:2: field 'weight'.*found \[1, 2\]"),
    ({"text": "a", "labels": [0, 1, 0], "weight": -1}, r"table.jsonl:2: field 'weight'.*>= 0.*found -1"),
    ({"labels": [0, 1, 0]}, r"table.jsonl:2: field 'text' is missing"),
    ({"text": "  ", "labels": [0, 1, 0]}, r"table.jsonl:2: field 'text': expected a non-empty string"),
    ({"text": 5, "labels": [0, 1, 0]}, r"table.jsonl:2: field 'text': expected a non-empty string, found 5"),
    ('{"text": "a", "labels": [0, 1, 0]', r"table.jsonl:2: invalid JSON"),
    ('[1, 2]', r"table.jsonl:2: expected a JSON object"),
]


@pytest.mark.parametrize("bad,message", BAD_JSONL)
def test_bad_jsonl_row_is_named(layout, write_jsonl, bad, message):
  path = write_jsonl([{"text": "fine", "labels": [0, 0, 0]}, bad, {"text": "fine", "labels": [0, 0, 0]}])
  with pytest.raises(UserError, match=message):
    read_table(path, layout)


def test_non_utf8_names_the_line(layout, tmp_path):
  path = tmp_path / "t.jsonl"
  path.write_bytes(b'{"text": "ok", "labels": [0, 0, 0]}\n{"text": "caf\xe9", "labels": [0, 0, 0]}\n')
  with pytest.raises(UserError, match=r"t.jsonl:2: not valid UTF-8"):
    read_table(str(path), layout)


@pytest.mark.parametrize("content,message", [
    ("", r"no rows"),
    ("words,labels\na,[0,0,0]\n", r"t.csv:1: header: no 'text' column"),
    ("text,sentiment\na,0\n", r"t.csv:1: header: expected a 'labels' column or one column per task"),
    ('text,labels\nok,"[0,0,0]"\n"unclosed,"[0,0,0]"\n', r"t.csv row 2 \(line 3\): malformed CSV"),
    ("text,labels\nok,\"[0,0,0]\",extra\n", r"t.csv row 1 \(line 2\): expected 2 fields"),
    ("text,labels\nok,\"[0,0,9]\"\n", r"t.csv row 1 \(line 2\): field 'labels'\[2\] \(task 'topic'\)"),
    ("text,labels\nok,zero\n", r"t.csv row 1 \(line 2\): field 'labels': expected a JSON list"),
])
def test_bad_csv_is_named(layout, tmp_path, content, message):
  path = tmp_path / "t.csv"
  path.write_text(content)
  with pytest.raises(UserError, match=message):
    read_table(str(path), layout)


def test_missing_file_and_unknown_format(layout, tmp_path):
  with pytest.raises(UserError, match="file not found"):
    read_table(str(tmp_path / "nope.jsonl"), layout)
  with pytest.raises(UserError, match="unknown table format '.xlsx'"):
    read_table(str(tmp_path / "x.xlsx"), layout)


def test_validation_split_is_seeded_and_disjoint(layout, write_jsonl):
  path = write_jsonl([{"text": f"t{i}", "labels": [i % 3, i % 2, i % 4]} for i in range(50)])
  table = read_table(path, layout)
  train, val = split_validation(table, "0.2", seed=3)
  again = split_validation(table, "20%", seed=3)[1]
  assert len(val) == 10 and len(train) == 40 and val.texts == again.texts
  assert not set(train.texts) & set(val.texts)
  assert split_validation(table, "0.2", seed=4)[1].texts != val.texts


@pytest.mark.parametrize("spec,count", [("0.1", 10), ("25%", 25), ("7", 7)])
def test_validation_count(spec, count):
  assert validation_count(spec, 100) == count


@pytest.mark.parametrize("spec", ["0", "100", "1.5", "val.jsonl", "150%"])
def test_validation_count_rejects(spec):
  with pytest.raises(UserError, match="config.data.validation"):
    validation_count(spec, 100)


MIXED = Layout((Task("sentiment", "classification", ("negative", "neutral", "positive")),
                Task("moderation", "multilabel", ("toxic", "spam", "offtopic")), Task("score", "regression", ())))


def test_multilabel_and_regression_cells(write_jsonl, tmp_path):
  path = write_jsonl([
      {"text": "a", "labels": [0, ["spam", "toxic"], 4.5]},
      {"text": "b", "labels": [1, [], -1]},  # none applies; -1 is a score
      {"text": "c", "labels": [2, -1, None]},  # no moderation label, no score
      {"text": "d", "labels": [None, [2, "spam"], 0]},
  ])
  table = read_table(path, MIXED)
  np.testing.assert_array_equal(table.labels, [[0, 0, 0], [1, 0, 0], [2, -1, -1], [-1, 0, 0]])
  np.testing.assert_array_equal(table.targets[1], [[1, 1, 0], [0, 0, 0], [0, 0, 0], [0, 1, 1]])
  np.testing.assert_array_equal(table.targets[2][:, 0], [4.5, -1, 0, 0])
  assert table.targets[0].shape == (4, 0)
  csv = tmp_path / "t.csv"  # one column per task: a JSON list, a number as text, empty cells for no label
  csv.write_text('text,sentiment,moderation,score\na,neutral,"[""offtopic""]",2.5\nb,0,,\nc,1,-1,null\n')
  table = read_table(str(csv), MIXED)
  np.testing.assert_array_equal(table.labels, [[1, 0, 0], [0, -1, -1], [1, -1, -1]])
  np.testing.assert_array_equal(table.targets[1][0], [0, 0, 1])
  assert float(table.targets[2][0, 0]) == 2.5


@pytest.mark.parametrize("labels,message", [
    ([0, "spam", 1], r"field 'labels'\[1\] \(task 'moderation'\): expected a list of label names .*found 'spam'"),
    ([0, ["rude"], 1], r"field 'labels'\[1\] \(task 'moderation'\).*found \['rude'\]"),
    ([0, [3], 1], r"field 'labels'\[1\] \(task 'moderation'\).*found \[3\]"),
    ([0, [], "high"], r"field 'labels'\[2\] \(task 'score'\): expected a finite number, or null .*found 'high'"),
    ([0, [], True], r"field 'labels'\[2\] \(task 'score'\).*found True"),
    ([0, [], [1.0]], r"field 'labels'\[2\] \(task 'score'\).*found \[1.0\]"),
    ([0, [1, 0, 1], 1], r"field 'labels'\[1\] \(task 'moderation'\): expected each label once .*multi-hot.*found \[1, 0, 1\]"),
    ([0, ["spam", 1], 1], r"field 'labels'\[1\] \(task 'moderation'\): expected each label once"),
    ([0, [], 10 ** 400], r"field 'labels'\[2\] \(task 'score'\): expected a finite number"),
])
def test_bad_multilabel_and_regression_cells_are_named(write_jsonl, labels, message):
  path = write_jsonl([{"text": "fine", "labels": [0, [], 1]}, {"text": "bad", "labels": labels}])
  with pytest.raises(UserError, match=r"table.jsonl:2: " + message):
    read_table(path, MIXED)


def test_parquet_tables_with_a_labels_list_or_a_column_per_task_and_pairs(layout, tmp_path):
  import pyarrow as pa  # the test extra's: no skip
  import pyarrow.parquet as pq
  pq.write_table(pa.table({"text": ["refund please", "app crashes"], "labels": [[0, 1, 0], [None, 1, 3]],
                           "text_pair": ["is it billing?", None], "weight": [1.0, 2.0]}), tmp_path / "t.parquet")
  table = read_table(str(tmp_path / "t.parquet"), layout)
  assert table.texts == ["refund please", "app crashes"] and table.pairs == ["is it billing?", None]
  np.testing.assert_array_equal(table.labels, [[0, 1, 0], [-1, 1, 3]])
  np.testing.assert_array_equal(table.weights[:, 0], [1, 2])
  pq.write_table(pa.table({"text": ["a", "b"], "sentiment": ["neutral", None], "moderation": [["spam"], []],
                           "score": [2.5, None]}), tmp_path / "kinds.parquet")
  table = read_table(str(tmp_path / "kinds.parquet"), MIXED)
  np.testing.assert_array_equal(table.labels, [[1, 0, 0], [-1, 0, -1]])
  np.testing.assert_array_equal(table.targets[1], [[0, 1, 0], [0, 0, 0]])
  assert table.pairs is None and float(table.targets[2][0, 0]) == 2.5
  pq.write_table(pa.table({"text": ["a", "b"], "labels": [[0, 1, 0], [0, 1, 7]]}), tmp_path / "bad.parquet")
  with pytest.raises(UserError, match=r"bad.parquet row 2: field 'labels'\[2\] \(task 'topic'\).*found 7"):
    read_table(str(tmp_path / "bad.parquet"), layout)
  (tmp_path / "parts.parquet").mkdir()  # a folder of Parquet parts, as Spark writes one
  pq.write_table(pa.table({"text": ["a"], "labels": [[0, 1, 0]]}), tmp_path / "parts.parquet" / "part-0.parquet")
  pq.write_table(pa.table({"text": ["b"], "labels": [[1, 0, 2]]}), tmp_path / "parts.parquet" / "part-1.parquet")
  assert sorted(read_table(str(tmp_path / "parts.parquet"), layout).texts) == ["a", "b"]
  (tmp_path / "text.parquet").write_text("not parquet")
  with pytest.raises(UserError, match=r"text.parquet: not a readable Parquet file"):
    read_table(str(tmp_path / "text.parquet"), layout)


@pytest.mark.parametrize("shares", [1, 2, 3, 5, 40])
def test_shares_of_a_jsonl_file_are_its_rows_in_order(layout, tmp_path, monkeypatch, shares):
  """n processes reading byte ranges: every row once, in file order, whatever the cut points, lines numbered as in
  the file; a BOM, CRLF endings, blank lines and multi-byte characters around the cuts."""
  monkeypatch.setattr(data, "CHUNK_ROWS", 4)
  rows = [json.dumps({"text": f"héllo wörld {i} " + "x" * (i % 7), "labels": [i % 3, None, i % 4]},
                     ensure_ascii=False) for i in range(30)]
  path = tmp_path / "t.jsonl"
  path.write_bytes(b"\xef\xbb\xbf" + "".join(r + ("\r\n" if i % 2 else "\n") + ("\n" if i % 9 == 4 else "")
                                            for i, r in enumerate(rows)).encode())
  whole = read_table(str(path), layout)
  parts = [t for i in range(shares) for t in read_chunks(str(path), layout, (i, shares))]
  joined = Table.concat(parts)
  assert joined.texts == whole.texts and len(whole) == 30
  np.testing.assert_array_equal(joined.labels, whole.labels)
  lines = path.read_bytes().split(b"\n")
  bad = next(k for k, line in enumerate(lines) if "wörld 17 ".encode() in line)
  lines[bad] = b'{"text": "late", "labels": [0, 9, 0]}'
  path.write_bytes(b"\n".join(lines))
  with pytest.raises(UserError, match=rf"t\.jsonl:{bad + 1}: field 'labels'\[1\]"):
    for i in range(shares):
      list(read_chunks(str(path), layout, (i, shares)))
