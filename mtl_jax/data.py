"""Table-format data: JSONL, CSV or Parquet rows, or a Dataset folder `datasets`' save_to_disk wrote, with `text`,
`labels` (one entry per task), an optional `text_pair` and an optional `weight`.

Every row is validated; an error names the file, line (or CSV row), field and what was expected, so a malformed
table never trains silently.

Row fields:
  text    a non-empty string.
  text_pair  optional: the second text of a pair (NLI, paraphrase, query / document), a non-empty string; the two
          are encoded as the encoder's family encodes pairs (token types where it has them).
  labels  a list with one entry per task, in `config.data.label_order`, as the task's kind reads it
          (mtl_jax/kinds): classification a class id (0..K-1) or name; multilabel a list of label names or ids
          ([] = none applies); regression a number. -1 / null mean "no label for this task" (for regression only
          null: -1 is a score). In CSV the cell holds the list as JSON (`[2, 0, null]`); a CSV may instead have one
          column per task, named after the task (an empty cell = no label; a multilabel cell holds a JSON list).
  weight  optional: one number >= 0 for the row, or a list with one number per task. Default 1.

The standard library reads JSONL and CSV files (rather than `datasets`): it keeps exact line numbers for errors, and
the format allows `weight` to be a number in one row and a list in another, which Arrow's one-type-per-column
inference rejects. Parquet and saved datasets, columnar already, have a `labels` list column or a column per task.
"""

import csv
import dataclasses
import json
import math
import os
import re
from collections.abc import Iterator

import numpy as np

from mtl_jax import hf_source, kinds
from mtl_jax.errors import UserError, location
from mtl_jax.readers import csv_rows, is_gzip, jsonl_objects
from mtl_jax.tasks import Layout, Task

csv.field_size_limit(2**31 - 1)
CHUNK_ROWS = 16384  # rows read, validated and tokenized at a time


@dataclasses.dataclass
class Table:
  """Validated examples: texts, labels [N, T] int32 (-1 = no label), weights [N, T] float32, and per task its float
  targets [N, target_width] (multi-hot labels, a score; width 0 for the other kinds)."""
  texts: list[str]
  labels: np.ndarray
  weights: np.ndarray
  targets: list[np.ndarray]
  pairs: list[str | None] | None = None  # each text's pair (None: it stands alone); None when no row has one

  def __len__(self) -> int:
    return len(self.texts)

  def take(self, idx: np.ndarray) -> "Table":
    return Table([self.texts[i] for i in idx], self.labels[idx], self.weights[idx], [x[idx] for x in self.targets],
                 None if self.pairs is None else [self.pairs[i] for i in idx])

  @staticmethod
  def concat(parts: list["Table"]) -> "Table":
    paired = any(p.pairs is not None for p in parts)
    return Table([t for p in parts for t in p.texts], np.concatenate([p.labels for p in parts]),
                 np.concatenate([p.weights for p in parts]),
                 [np.concatenate(columns) for columns in zip(*(p.targets for p in parts))],
                 [x for p in parts for x in (p.pairs or [None] * len(p))] if paired else None)


# ---------------------------------------------------------------------------------------------------------------
# Row validation.

def parse_label(value, task: Task, where: str, field: str) -> tuple[int, list[float]]:
  """One label entry, as the task's kind reads it -> (label id, -1 for no label; float targets)."""
  return kinds.KINDS[task.kind].parse(value, task, where, field)


def parse_labels(value, layout: Layout, where: str) -> list[tuple[int, list[float]]]:
  if not isinstance(value, list):
    raise UserError(f"{where}: field 'labels': expected a list of {len(layout.tasks)} entries, one per task "
                    f"({', '.join(layout.names)}), found {value!r}")
  if len(value) != len(layout.tasks):
    raise UserError(f"{where}: field 'labels': expected {len(layout.tasks)} entries ({', '.join(layout.names)}), "
                    f"found {len(value)}: {value!r}")
  return [parse_label(v, task, where, f"'labels'[{t}]") for t, (v, task) in enumerate(zip(value, layout.tasks))]


def _is_weight(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def parse_weight(value, num_tasks: int, where: str) -> list[float]:
  """A row weight: missing -> 1 for every task; a number -> that for every task; a list -> one per task."""
  if value is None or value == "":
    return [1.0] * num_tasks
  if _is_weight(value):
    return [float(value)] * num_tasks
  if isinstance(value, list) and len(value) == num_tasks and all(_is_weight(x) for x in value):
    return [float(x) for x in value]
  raise UserError(f"{where}: field 'weight': expected a finite number >= 0 or a list of {num_tasks} such numbers, "
                  f"found {value!r}")


def parse_text(value, where: str, field: str = "text") -> str:
  if not isinstance(value, str) or not value.strip():
    raise UserError(f"{where}: field '{field}': expected a non-empty string, found {value!r}")
  return value


def parse_pair(value, where: str) -> str | None:
  """The optional second text: absent, null or an empty CSV cell -> None."""
  return None if value is None or value == "" else parse_text(value, where, "text_pair")


# ---------------------------------------------------------------------------------------------------------------
# File formats: each yields (where, text, text_pair, labels, weight) with raw field values.

def _jsonl_rows(path: str, layout: Layout, share: tuple[int, int] = (0, 1)) -> Iterator[tuple]:
  for where, row in jsonl_objects(path, "a JSON object with 'text' and 'labels'", share):
    for field in ("text", "labels"):
      if field not in row:
        raise UserError(f"{where}: field '{field}' is missing (found fields: {sorted(row)})")
    yield where, row["text"], row.get("text_pair"), parse_labels(row["labels"], layout, where), row.get("weight")


def _json_cell(value: str, where: str, field: str):
  """A CSV cell holding a JSON value (a list of labels or weights), or a plain number."""
  if value is None or value.strip() == "":
    return None
  try:
    return json.loads(value)
  except json.JSONDecodeError:
    raise UserError(f"{where}: field '{field}': expected a JSON list or a number, found {value!r}") from None


def _csv_rows(path: str, layout: Layout) -> Iterator[tuple]:
  header, rows = csv_rows(path, header=True)
  if not header:
    return
  columns = {name: i for i, name in enumerate(header)}
  if "text" not in columns:
    raise UserError(f"{location(path, 1)}: header: no 'text' column (found columns: {list(columns)})")
  per_task = "labels" not in columns
  if per_task and (missing := [n for n in layout.names if n not in columns]):
    raise UserError(f"{location(path, 1)}: header: expected a 'labels' column or one column per task; "
                    f"missing {missing} (found columns: {list(columns)})")
  for where, cells in rows:
    if len(cells) != len(header):
      raise UserError(f"{where}: expected {len(header)} fields ({', '.join(header)}), found {len(cells)}")
    cell = lambda name: cells[columns[name]] if name in columns else None
    if per_task:
      labels = [parse_label(cell(t.name), t, where, f"'{t.name}'") for t in layout.tasks]
    else:
      labels = parse_labels(_json_cell(cell("labels"), where, "labels"), layout, where)
    yield where, cell("text"), cell("text_pair"), labels, _json_cell(cell("weight"), where, "weight")


def _column_rows(path: str, columns: list[str], rows: Iterator[tuple[str, dict]], layout: Layout) -> Iterator[tuple]:
  """Rows of a columnar table (Parquet, a saved dataset): text, labels as a list column or one column per task (an
  Arrow column has one type), optional text_pair and weight."""
  per_task = "labels" not in columns
  if "text" not in columns or (per_task and any(n not in columns for n in layout.names)):
    raise UserError(f"{path}: expected columns 'text' and 'labels' (or one column per task: {list(layout.names)}); "
                    f"found {columns}")
  for where, row in rows:
    labels = ([parse_label(row[t.name], t, where, f"'{t.name}'") for t in layout.tasks] if per_task
              else parse_labels(row["labels"], layout, where))
    yield where, row["text"], row.get("text_pair"), labels, row.get("weight")


def _parquet_rows(path: str, layout: Layout) -> Iterator[tuple]:
  """Parquet rows, read with pyarrow."""
  try:
    import pyarrow.parquet as pq
  except ImportError:
    raise UserError(f"{path}: reading Parquet tables needs pyarrow (pip install pyarrow, or mtl_jax's extra "
                    "'parquet')") from None
  try:
    table = pq.read_table(path)
  except Exception as e:  # pyarrow raises ArrowInvalid / OSError on a file that is not Parquet
    raise UserError(f"{path}: not a readable Parquet file: {str(e).splitlines()[0]}") from None
  rows = ((location(path, row=n), row) for n, row in enumerate(table.to_pylist(), 1))
  yield from _column_rows(path, table.column_names, rows, layout)


def _saved_dataset_rows(path: str, layout: Layout) -> Iterator[tuple]:
  """The rows of a folder `Dataset.save_to_disk` wrote (the optional extra 'hf'), as Parquet rows; a ClassLabel
  column's ids are read as its names, so they mean what the task's labels say. Rows are named by their index."""
  columns, rows = hf_source.table_rows(path)
  yield from _column_rows(path, columns, rows, layout)


READERS = {".jsonl": _jsonl_rows, ".json": _jsonl_rows, ".csv": _csv_rows, ".tsv": _csv_rows,
           ".parquet": _parquet_rows}


def table_reader(path: str):
  """The reader of a table (a file, or a folder `datasets`' save_to_disk wrote); a UserError for a missing file or an
  unknown format."""
  ext = os.path.splitext(path)[1].lower()
  if os.path.isdir(path) and ext != ".parquet":  # a folder of Parquet parts (Spark's train.parquet/) is Parquet
    return _saved_dataset_rows
  if ext not in READERS:
    raise UserError(f"{path}: unknown table format {ext!r}; expected one of {sorted(READERS)} or a save_to_disk "
                    "folder")
  if not os.path.exists(path):
    raise UserError(f"{path}: file not found")
  return READERS[ext]


def table_of(rows: list[tuple], layout: Layout) -> Table:
  """Rows (where, text, text_pair, labels, weight) validated, in order -> a Table."""
  texts, pairs, weights = [], [], []
  for where, text, pair, _, weight in rows:
    texts.append(parse_text(text, where))
    pairs.append(parse_pair(pair, where))
    weights.append(parse_weight(weight, len(layout.tasks), where))
  n = len(rows)
  return Table(texts, np.asarray([[label for label, _ in row[3]] for row in rows], np.int32).reshape(n, -1),
               np.asarray(weights, np.float32).reshape(n, -1),
               [np.asarray([row[3][t][1] for row in rows], np.float32).reshape(n, task.target_width)
                for t, task in enumerate(layout.tasks)], pairs if any(p is not None for p in pairs) else None)


def splittable(path: str) -> bool:
  """Whether processes can read a table in shares (`read_chunks`' share): a plain (not gzip) JSONL file."""
  return os.path.splitext(path)[1].lower() in (".jsonl", ".json") and os.path.isfile(path) and not is_gzip(path)


def read_chunks(path: str, layout: Layout, share: tuple[int, int] = (0, 1)) -> Iterator[Table]:
  """A table read and validated CHUNK_ROWS rows at a time, so that a table of any size is read in constant memory
  (JSONL and CSV line by line; Parquet and saved datasets are read whole by their libraries). `share` (i, n): the
  rows of the i-th of n byte ranges of a `splittable` file (possibly none), lines numbered as in the file."""
  reader, chunk, count = table_reader(path), [], 0
  for row in reader(path, layout, share) if share != (0, 1) else reader(path, layout):
    chunk.append(row)
    if len(chunk) == CHUNK_ROWS:
      yield table_of(chunk, layout)
      chunk, count = [], count + CHUNK_ROWS
  if chunk:
    yield table_of(chunk, layout)
  elif not count and share == (0, 1):
    raise no_rows(path)


def no_rows(path: str) -> UserError:
  ext = os.path.splitext(path)[1].lower()
  return UserError(f"{path}: no rows (expected {ext[1:].upper() or 'dataset'} rows with 'text' and 'labels')")


def read_table(path: str, layout: Layout) -> Table:
  """Reads and validates a whole table: a file, or a folder `datasets`' save_to_disk wrote."""
  return Table.concat(list(read_chunks(path, layout)))


def is_fraction(value: str) -> bool:
  """A split given as a share of train ("0.1", "10%" or a row count "500") rather than a file (or TFDS split)."""
  return bool(re.fullmatch(r"[\d.]+%?", value))


def validation_count(spec: str, n: int, where: str = "config.data.validation") -> int:
  """Rows to hold out: `spec` is a fraction ("0.1" or "10%") or a row count ("500")."""
  try:
    value = float(spec[:-1]) / 100 if spec.endswith("%") else float(spec)
  except ValueError:
    raise UserError(f"{where}: expected a file, a fraction or a row count, found {spec!r} (no such file)") from None
  count = round(value * n) if value < 1 or spec.endswith("%") else int(value)
  if not 0 < count < n or (value >= 1 and not value.is_integer()):
    raise UserError(f"{where}: {spec!r} leaves no training or no validation rows out of {n}")
  return count


def split_validation(rows, spec: str, seed: int):
  """Seeded split of a training table's rows (a Table, or its encoded examples) into (train, validation)."""
  count = validation_count(spec, len(rows))
  perm = np.random.default_rng(seed).permutation(len(rows))
  return rows.take(np.sort(perm[count:])), rows.take(np.sort(perm[:count]))
