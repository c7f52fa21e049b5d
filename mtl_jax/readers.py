"""Readers for public corpora: CoNLL token-per-line files, CoNLL-U, text-classification tables (CSV / JSONL),
label lists and TweetEval's paired `*_text.txt` / `*_labels.txt` files.

As in `data.py`, the standard library parses, so every error keeps its exact line number: bad content raises only
`UserError`, whose message names the file and line (or CSV row) and what was expected. Every reader reads gzip
(`.gz`, or gzip magic bytes) transparently and ignores a UTF-8 byte-order mark.

Lines are split on "\\n" only (a trailing "\\r" is dropped), never with `str.splitlines`, which would also break
tweets at U+2028, U+0085 and other separators and shift line numbers.
"""

import csv
import dataclasses
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterator

from mtl_jax.errors import UserError, location

csv.field_size_limit(2**31 - 1)

DOCSTART = "-DOCSTART-"
CONLLU_FIELDS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
CONLLU_TAG_INDEX = {"upos": 3, "xpos": 4}
TABLE_FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclasses.dataclass(frozen=True)
class Sentence:
  """One sentence: its words, per tag column name one tag per word, and where it starts ("file:line")."""
  words: tuple[str, ...]
  tags: dict[str, tuple[str, ...]]
  where: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class LabelledText:
  """One text, its label name (None = no label), and where it is ("file:line", "file row N (line L)"); `pair` is
  the second text of a text pair (None: a single text)."""
  text: str
  label: str | None
  where: str = dataclasses.field(default="", compare=False)
  pair: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# File access.

def _open(path: str):
  """The file opened for reading bytes; a UserError naming it when it cannot be."""
  try:
    return open(path, "rb")
  except FileNotFoundError:
    raise UserError(f"{path}: file not found") from None
  except IsADirectoryError:
    raise UserError(f"{path}: is a directory, expected a file") from None
  except OSError as e:
    raise UserError(f"{path}: cannot read the file ({e.strerror or e})") from None


def _read_bytes(path: str) -> bytes:
  """The file's bytes, gunzipped when the name ends in .gz or the bytes start with the gzip magic."""
  with _open(path) as f:
    raw = f.read()
  if path.endswith(".gz") or raw.startswith(b"\x1f\x8b"):
    try:
      raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
      raise UserError(f"{path}: not a valid gzip file ({e})") from None
  return raw


def _decode(raw: bytes, path: str) -> str:
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = 1 + raw[:e.start].count(b"\n")
    raise UserError(f"{location(path, line)}: not valid UTF-8 (byte {raw[e.start]:#04x}); "
                    "save the file as UTF-8") from None
  return text.removeprefix("\ufeff")


def is_gzip(path: str) -> bool:
  with open(path, "rb") as f:
    return path.endswith(".gz") or f.read(2) == b"\x1f\x8b"


def _share(f, size: int, share: tuple[int, int]) -> tuple[Iterator[bytes], int]:
  """(the lines of share `share` = (i, n) of a plain file: those whose first byte lies in the i-th of n equal byte
  ranges; the number of lines before them)."""
  start, end = size * share[0] // share[1], size * (share[0] + 1) // share[1]
  before = 0
  if start > 0:
    f.seek(start - 1)
    f.readline()  # the rest of a line that began in an earlier share (just its "\\n" when one ended at start - 1)
    start = f.tell()
    f.seek(0)
    while f.tell() < start:
      before += f.read(min(1 << 24, start - f.tell())).count(b"\n")

  def lines() -> Iterator[bytes]:
    while f.tell() < end and (line := f.readline()):
      yield line

  return lines(), before


def text_lines(path, keep_ends: bool = False, share: tuple[int, int] = (0, 1)) -> Iterator[tuple[int, str]]:
  """(line number, line) of a file one at a time, so a table of any size is read in constant memory: gzip
  transparent, UTF-8 required (an error names the line), BOM dropped; split on "\\n" only, each without its "\\n"
  and a trailing "\\r" (`keep_ends`: with both, as the csv module reads lines). `share` (i, n): only the lines of the
  i-th of n equal byte ranges of a plain (not gzip) file, numbered as in the whole file: n processes read a file
  together."""
  path = str(path)
  with _open(path) as f:
    stream, before = gzip.GzipFile(fileobj=f) if path.endswith(".gz") or f.peek(2)[:2] == b"\x1f\x8b" else f, 0
    if share != (0, 1):
      stream, before = _share(f, os.fstat(f.fileno()).st_size, share)
    try:
      for line_no, raw in enumerate(stream, before + 1):
        try:
          line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
          raise UserError(f"{location(path, line_no)}: not valid UTF-8 (byte {raw[e.start]:#04x}); save the file as "
                          "UTF-8") from None
        line = line.removeprefix("\ufeff") if line_no == 1 else line
        yield line_no, line if keep_ends else line.removesuffix("\n").removesuffix("\r")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
      raise UserError(f"{path}: not a valid gzip file ({e})") from None


def read_text(path) -> str:
  """A whole file as text: gzip transparent, UTF-8 required, BOM dropped."""
  path = str(path)
  return _decode(_read_bytes(path), path)


def split_lines(text: str) -> list[str]:
  """Lines split on "\\n" only, each without a trailing "\\r"; a final newline does not add an empty line."""
  lines = text.split("\n")
  if lines[-1] == "":
    lines.pop()
  return [line.removesuffix("\r") for line in lines]


# ---------------------------------------------------------------------------------------------------------------
# CoNLL (one token per line) and CoNLL-U.

def _check_columns(columns: dict[str, int], word_column: int) -> None:
  ok_index = lambda i: isinstance(i, int) and not isinstance(i, bool) and i >= 0
  if (not isinstance(columns, dict) or not all(isinstance(k, str) and k and ok_index(v) for k, v in columns.items())
      or not ok_index(word_column)):
    raise UserError(f"read_conll: expected columns as {{tag name: column index >= 0}} and word_column >= 0, "
                    f"found columns={columns!r}, word_column={word_column!r}")


def _column_labels(columns: dict[str, int], word_column: int, width: int) -> list[str]:
  """A name for each of `width` columns, for messages: word, the tag names, `_` for unused ones."""
  names = {i: name for name, i in columns.items()}
  names[word_column] = "word"
  return [names.get(i, "_") for i in range(width)]


def _conll_blocks(lines: list[str], split) -> Iterator[list[tuple[int, list[str]]]]:
  """Sentences as lists of (line number, fields: `split(line)`); blank lines and -DOCSTART- lines end a sentence."""
  block = []
  for line_no, line in enumerate(lines, 1):
    fields = split(line)
    if not line.strip() or fields[0] == DOCSTART:
      if block:
        yield block
      block = []
      continue
    block.append((line_no, fields))
  if block:
    yield block


def read_conll(path, columns: dict[str, int], word_column: int = 0, separator: str | None = None) -> list[Sentence]:
  """CoNLL token-per-line file -> sentences; `columns` maps tag names to column indices, e.g. {"ner": 3}.

  `separator` None splits on whitespace, "\\t" on tabs. Every token line must have as many columns as the first one,
  and at least enough for `word_column` and `columns`.
  """
  _check_columns(columns, word_column)
  path = str(path)
  needed = max([word_column, *columns.values()]) + 1
  used = {word_column: "word", **{i: name for name, i in columns.items()}}
  width, sentences = None, []
  for block in _conll_blocks(split_lines(read_text(path)), lambda line: line.split(separator)):
    for line_no, fields in block:
      expected = needed if width is None else width
      if len(fields) < needed if width is None else len(fields) != width:
        raise UserError(f"{location(path, line_no)}: expected {expected} columns "
                        f"({', '.join(_column_labels(columns, word_column, expected))}), found {len(fields)}")
      width = len(fields)
      if empty := [name for i, name in used.items() if not fields[i]]:
        raise UserError(f"{location(path, line_no)}: field '{empty[0]}' is empty")
    sentences.append(Sentence(tuple(fields[word_column] for _, fields in block),
                              {name: tuple(fields[i] for _, fields in block) for name, i in columns.items()},
                              location(path, block[0][0])))
  if not sentences:
    raise UserError(f"{path}: no sentences (expected one token per line with "
                    f"{', '.join(_column_labels(columns, word_column, needed))}, and a blank line between sentences)")
  return sentences


def conll_fields(line: str) -> list[str]:
  """A CoNLL line's columns: split on tabs when the line has one (a word may then hold spaces), else on whitespace."""
  return line.split("\t") if "\t" in line else line.split()


def conll_words(lines: list[str], path: str, word_column: int = 0) -> list[list[tuple[int, str]]]:
  """The sentences of a CoNLL file's lines (without their line ends) as (line index, word) pairs, for tagging it:
  blank lines and -DOCSTART- lines end a sentence and belong to none; the other columns are not read (gold tags may
  be absent). A token line without a non-empty `word_column` is an error naming it."""
  sentences = list(_conll_blocks(lines, conll_fields))
  for line_no, fields in (token for sentence in sentences for token in sentence):
    where = location(path, line_no)
    if len(fields) <= word_column:
      raise UserError(f"{where}: field 'word' (column {word_column}): expected at least {word_column + 1} columns, "
                      f"found {len(fields)}")
    if not fields[word_column].strip():
      raise UserError(f"{where}: field 'word' (column {word_column}) is empty")
  return [[(line_no - 1, fields[word_column]) for line_no, fields in sentence] for sentence in sentences]


def _conllu_word(fields: list[str], position: int, where: str) -> bool:
  """Whether a token line is a syntactic word (True) or a range / empty node to skip (False); checks its ID."""
  token_id = fields[0]
  if re.fullmatch(r"[0-9]+-[0-9]+|[0-9]+\.[0-9]+", token_id):
    return False
  if not re.fullmatch(r"[0-9]+", token_id):
    raise UserError(f"{where}: field 'ID': expected a word index, a range like 3-4 or an empty node like 8.1, "
                    f"found {token_id!r}")
  if int(token_id) != position:
    raise UserError(f"{where}: field 'ID': expected {position} (IDs count up from 1 in each sentence; "
                    f"is a blank line missing?), found {token_id!r}")
  return True


def read_conllu(path, column: str = "upos") -> list[Sentence]:
  """CoNLL-U file -> sentences of syntactic words, tagged with `column` ("upos" or "xpos", also the tag name).

  Comment lines, multi-word token ranges (3-4) and empty nodes (8.1) are skipped.
  """
  if column not in CONLLU_TAG_INDEX:
    raise UserError(f"read_conllu: column: expected one of {sorted(CONLLU_TAG_INDEX)}, found {column!r}")
  path, index = str(path), CONLLU_TAG_INDEX[column]
  sentences, words, tags, first = [], [], [], 0
  for line_no, line in enumerate(split_lines(read_text(path)) + [""], 1):
    if line.startswith("#"):
      continue
    if not line.strip():
      if words:
        sentences.append(Sentence(tuple(words), {column: tuple(tags)}, location(path, first)))
      words, tags, first = [], [], 0
      continue
    first = first or line_no
    where, fields = location(path, line_no), line.split("\t")
    if len(fields) != len(CONLLU_FIELDS):
      raise UserError(f"{where}: expected {len(CONLLU_FIELDS)} tab-separated columns "
                      f"({' '.join(CONLLU_FIELDS)}), found {len(fields)}")
    if not _conllu_word(fields, len(words) + 1, where):
      continue
    for i in (1, index):
      if not fields[i]:
        raise UserError(f"{where}: field '{CONLLU_FIELDS[i]}' is empty (CoNLL-U writes _ for no value)")
    words.append(fields[1])
    tags.append(fields[index])
  if not sentences:
    raise UserError(f"{path}: no sentences (expected CoNLL-U: 10 tab-separated columns per word, "
                    "a blank line after each sentence)")
  return sentences


# ---------------------------------------------------------------------------------------------------------------
# Text classification tables: CSV / TSV (header optional) or JSONL.

def _unescape_backslashes(text: str) -> str:
  """AG News escapes: `\\$` is a dollar sign, any other run of backslashes stands for line breaks -> one space."""
  return re.sub(r"\\+", " ", text.replace("\\$", "$"))


def _column_index(column: str | int, header: list[str] | None, where: str) -> int:
  if isinstance(column, int) and not isinstance(column, bool) and column >= 0:
    if header is not None and column >= len(header):
      raise UserError(f"{where}: header: no column {column} (found {len(header)} columns: {header})")
    return column
  if not isinstance(column, str):
    raise UserError(f"{where}: expected a column name or an index >= 0, found {column!r}")
  if header is None:
    raise UserError(f"{where}: column {column!r}: a file without a header row needs column indices, not names")
  if column not in header:
    raise UserError(f"{where}: header: no column {column!r} (found columns: {header})")
  return header.index(column)


def csv_rows(path: str, header: bool) -> tuple[list[str] | None, Iterator[tuple[str, list[str]]]]:
  """(header names or None, an iterator of (where, cells)) for a CSV (TSV by its name), with strict quoting and
  errors naming the row and the line it starts on; blank rows are skipped."""
  delimiter = "\t" if re.search(r"\.tsv(\.gz)?$", path.lower()) else ","
  reader = csv.reader((line for _, line in text_lines(path, keep_ends=True)), delimiter=delimiter, strict=True)
  names = None
  if header:
    try:
      names = [name.strip() for name in next(reader, [])]
    except csv.Error as e:
      raise UserError(f"{location(path, 1)}: header: malformed CSV: {e}") from None

  def rows() -> Iterator[tuple[str, list[str]]]:
    row_no, start = 0, reader.line_num + 1
    while True:
      try:
        cells = next(reader)
      except StopIteration:
        return
      except csv.Error as e:
        raise UserError(f"{location(path, start, row_no + 1)}: malformed CSV ({e}); is a quote left unclosed?") from None
      row_no += 1
      where, start = location(path, start, row_no), reader.line_num + 1
      if cells:
        yield where, cells

  return names, rows()


def _csv_records(path: str, text_columns: tuple, label_column, header: bool) -> Iterator[tuple]:
  """(where, text cells, label cell) per CSV row."""
  names, rows = csv_rows(path, header)
  if header and not names:
    return
  width = len(names) if names else None
  indices = [_column_index(c, names, location(path, 1)) for c in (*text_columns, label_column)] if names else None
  for where, cells in rows:
    if indices is None:
      indices = [_column_index(c, None, where) for c in (*text_columns, label_column)]
      width = len(cells)
      if width <= max(indices):
        raise UserError(f"{where}: expected at least {max(indices) + 1} fields (columns {indices} are read), "
                        f"found {width}")
    if len(cells) != width:
      described = f" ({', '.join(names)})" if names else " (as in the first row)"
      raise UserError(f"{where}: expected {width} fields{described}, found {len(cells)}")
    yield where, [cells[i] for i in indices[:-1]], cells[indices[-1]]


def jsonl_objects(path: str, expected: str = "a JSON object", share: tuple[int, int] = (0, 1)
                  ) -> Iterator[tuple[str, dict]]:
  """(where, object) per non-blank line of a JSONL file (gzip transparent, UTF-8 required; `share`: text_lines'); a
  line that is not valid JSON or not `expected` (a JSON object, described for the message) is an error naming it."""
  for line_no, line in text_lines(path, share=share):
    if not line.strip():
      continue
    where = location(path, line_no)
    try:
      row = json.loads(line)
    except json.JSONDecodeError as e:
      raise UserError(f"{where}: invalid JSON at column {e.colno}: {e.msg}") from None
    except ValueError as e:  # int strings over Python's digit limit
      raise UserError(f"{where}: invalid JSON: {e}") from None
    except RecursionError:
      raise UserError(f"{where}: invalid JSON: nested too deeply") from None
    if not isinstance(row, dict):
      raise UserError(f"{where}: expected {expected}, found {type(row).__name__}")
    yield where, row


def _jsonl_records(path: str, text_columns: tuple, label_column) -> Iterator[tuple]:
  """(where, text values, label value) per JSONL line."""
  for column in (*text_columns, label_column):
    if not isinstance(column, str):
      raise UserError(f"{path}: JSONL rows are read by key name; found column {column!r}")
  for where, row in jsonl_objects(path):
    for column in (*text_columns, label_column):
      if column not in row:
        raise UserError(f"{where}: field '{column}' is missing (found fields: {sorted(row)})")
    for column in text_columns:
      if not isinstance(row[column], str):
        raise UserError(f"{where}: field '{column}': expected a string, found {row[column]!r}")
    label = row[label_column]
    if isinstance(label, int) and not isinstance(label, bool):
      label = str(label)
    if label is not None and not isinstance(label, (str, float, list)):  # a score or a label list: the kind's to read
      raise UserError(f"{where}: field '{label_column}': expected a string, a number, a list or null, found {label!r}")
    yield where, [row[c] for c in text_columns], label


def _table_format(path: str) -> str:
  name = path.lower().removesuffix(".gz")
  ext = os.path.splitext(name)[1]
  if ext not in TABLE_FORMATS:
    raise UserError(f"{path}: unknown table format {ext!r}; expected one of {sorted(TABLE_FORMATS)}")
  return TABLE_FORMATS[ext]


def _label_name(label: str | None, label_names: dict[str, str] | None, where: str, column) -> str | None:
  """A raw label (stripped; empty = None) -> its name through `label_names` when given; a JSONL score or list of
  labels is left to the task's kind."""
  if isinstance(label, (float, list)):
    return label
  label = label.strip() if label is not None else None
  if not label:
    return None
  if label_names is None:
    return label
  if label not in label_names:
    raise UserError(f"{where}: field '{column}': expected one of {sorted(label_names)}, found {label!r}")
  return label_names[label]


def read_text_classification(path, text_columns: tuple[str | int, ...], label_column: str | int, header: bool = True,
                             label_names: dict[str, str] | None = None, *, backslash_escapes: bool = False,
                             skip_empty: bool = False, pair_columns: tuple[str | int, ...] = ()) -> list[LabelledText]:
  """CSV / TSV / JSONL rows -> texts (the text columns joined with " ") and labels (an empty cell = no label); with
  `pair_columns`, each text's pair is those columns joined likewise (NLI: premise, hypothesis).

  Columns are header names or 0-based indices (indices only without a header; names only in JSONL). `label_names`
  maps raw labels to names (e.g. AG News "1" -> "World"); a label outside it is an error. `backslash_escapes`
  undoes AG News escapes (`\\$` -> `$`, other backslash runs are line breaks -> one space). An empty text is an error
  unless `skip_empty` drops the row.
  """
  path = str(path)
  if isinstance(text_columns, (str, int)) or not text_columns:
    raise UserError(f"{path}: text_columns: expected a non-empty tuple of columns, found {text_columns!r}")
  columns = (*text_columns, *pair_columns)
  if _table_format(path) == "jsonl":
    records = _jsonl_records(path, columns, label_column)
  else:
    records = _csv_records(path, columns, label_column, header)
  examples = []
  for where, cells, label in records:
    if backslash_escapes:
      cells = [_unescape_backslashes(p) for p in cells]
    texts = []
    for names, parts in ((text_columns, cells[:len(text_columns)]), (pair_columns, cells[len(text_columns):])):
      texts.append(" ".join(p for p in parts if p.strip()))
      if names and not texts[-1] and not skip_empty:
        raise UserError(f"{where}: text columns {list(names)}: expected non-empty text, found {parts!r}")
    if not all(texts[:1 + bool(pair_columns)]):
      continue  # skip_empty
    examples.append(LabelledText(texts[0], _label_name(label, label_names, where, label_column), where,
                                 texts[1] if pair_columns else None))
  if not examples:
    raise UserError(f"{path}: no rows (expected rows with text columns {list(text_columns)} "
                    f"and label column {label_column!r})")
  return examples


# ---------------------------------------------------------------------------------------------------------------
# Label lists, TweetEval mappings and paired text / label files.

def read_label_list(path) -> list[str]:
  """`classes.txt`: one label name per line (line 1 = the first class); trailing blank lines are ignored."""
  path = str(path)
  lines = [line.strip() for line in split_lines(read_text(path))]
  while lines and not lines[-1]:
    lines.pop()
  if not lines:
    raise UserError(f"{path}: no label names (expected one name per line)")
  first = {}
  for line_no, name in enumerate(lines, 1):
    if not name:
      raise UserError(f"{location(path, line_no)}: empty line (expected one label name per line)")
    if name in first:
      raise UserError(f"{location(path, line_no)}: label {name!r} repeats line {first[name]}")
    first[name] = line_no
  return lines


def read_mapping(path) -> dict[str, str]:
  """TweetEval `mapping.txt`: `id<TAB>name` per line (extra columns ignored) -> {id: name}."""
  path = str(path)
  mapping, first = {}, {}
  for line_no, line in enumerate(split_lines(read_text(path)), 1):
    if not line.strip():
      continue
    fields = [f.strip() for f in line.split("\t")]
    if len(fields) < 2 or not fields[0] or not fields[1]:
      raise UserError(f"{location(path, line_no)}: expected 'id<TAB>name', found {line!r}")
    if fields[0] in mapping:
      raise UserError(f"{location(path, line_no)}: id {fields[0]!r} repeats line {first[fields[0]]}")
    mapping[fields[0]], first[fields[0]] = fields[1], line_no
  if not mapping:
    raise UserError(f"{path}: no labels (expected 'id<TAB>name' lines)")
  return mapping


def read_paired_text_labels(text_path, labels_path, mapping: dict[str, str] | None = None, *,
                            skip_empty: bool = False) -> list[LabelledText]:
  """TweetEval `*_text.txt` + `*_labels.txt`: line i of one is the text, of the other its label.

  Trailing whitespace is stripped from texts; labels go through `mapping` (id -> name) when given. An empty text line
  is an error unless `skip_empty` drops it with its label.
  """
  text_path, labels_path = str(text_path), str(labels_path)
  texts, labels = split_lines(read_text(text_path)), split_lines(read_text(labels_path))
  if len(texts) != len(labels):
    raise UserError(f"{text_path} has {len(texts)} lines but {labels_path} has {len(labels)}; "
                    "expected one label line per text line")
  if not texts:
    raise UserError(f"{text_path}: no lines (expected one text per line)")
  examples = []
  for line_no, (text, label) in enumerate(zip(texts, labels), 1):
    text, label = text.rstrip(), label.strip()
    if not label:
      raise UserError(f"{location(labels_path, line_no)}: expected a label, found an empty line")
    if mapping is not None and label not in mapping:
      raise UserError(f"{location(labels_path, line_no)}: expected a label id in {sorted(mapping)}, found {label!r}")
    if not text:
      if skip_empty:
        continue
      raise UserError(f"{location(text_path, line_no)}: expected non-empty text, found an empty line "
                      "(skip_empty=True drops such lines)")
    examples.append(LabelledText(text, mapping[label] if mapping is not None else label,
                                 location(text_path, line_no)))
  if not examples:
    raise UserError(f"{text_path}: no non-empty texts")
  return examples
