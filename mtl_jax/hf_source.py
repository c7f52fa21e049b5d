"""Hugging Face `datasets` as a corpus source (`format: "hf"`) and as a table (a `save_to_disk` folder).

The optional extra `pip install 'mtl_jax[hf]'` brings `datasets`; it is imported only when an hf spec or folder is
read. A spec's `dataset` is opened with `datasets.load_from_disk` when it is a folder `save_to_disk` wrote (a
DatasetDict, or a single Dataset, whose one split is then "train"), else with `datasets.load_dataset(dataset, name,
data_files=...)`: a loader ("parquet", "csv", "json", "arrow") with local `data_files`, a folder of data files, or,
for a machine that reaches the hub, a hub name.

Spec fields (besides the corpus ones, see `corpora` and schema.DATA_FIELDS):
  dataset      a folder under the data root (or absolute), a loader name, or a hub name.
  name         load_dataset's config name (empty: none); data_files: a path or glob, a list of them, or
               {split: path(s)}, all under the data root.
  train        a split ("train", "train[:90%]", "train+test"); validation / test likewise, or a fraction of train.
  text_columns string columns joined by a space (default ("text",)); text_pair_columns likewise for the second text
               of a pair; label_column: the task's label column. A ClassLabel column gives its names (-1: no label);
               a string column its values ("" or null: no label); an integer its digits; a float (regression) or
               a list (multilabel) goes to the task's kind as it is, a list of ClassLabel ids as names.
  words        for tagging: the column of words (a Sequence of strings); `tag`: the task's Sequence(ClassLabel) or
               Sequence of strings column, one tag per word.

Rows are named as the dataset indexes them: `<dataset> split train row 17` is `dataset["train"][17]` (from 0).
"""

import dataclasses
import importlib
import os

from mtl_jax.errors import UserError

INSTALL = "pip install 'mtl_jax[hf]'"


def import_datasets():
  """The datasets module, or a UserError naming the extra to install."""
  try:
    return importlib.import_module("datasets")
  except ImportError as e:
    raise UserError(f"format 'hf' needs the datasets library ({e}): {INSTALL}") from None


@dataclasses.dataclass
class Source:
  """An opened dataset: what messages call it, and its splits by name."""
  label: str
  splits: dict


def under(root: str, path: str) -> str:
  path = os.path.expanduser(path)
  return path if os.path.isabs(path) else os.path.join(root, path)


def is_saved(path: str) -> bool:
  """Whether `path` is a folder that `save_to_disk` wrote (a DatasetDict's or a Dataset's)."""
  return any(os.path.isfile(os.path.join(path, f)) for f in ("dataset_dict.json", "state.json"))


def data_files(value, root: str):
  """The spec's data_files with every path under the data root (None when not given)."""
  if not value:
    return None
  if isinstance(value, str):
    return under(root, value)
  if isinstance(value, dict):
    return {split: data_files(paths, root) for split, paths in value.items()}
  return [under(root, v) for v in value]


def first_line(error: Exception) -> str:
  lines = str(error).strip().splitlines()
  return f"{type(error).__name__}: {lines[0] if lines else ''}"


def load_saved(path: str):
  """A `save_to_disk` folder -> its Dataset or DatasetDict."""
  datasets = import_datasets()
  try:
    return datasets.load_from_disk(path)
  except (FileNotFoundError, ValueError, OSError) as e:
    raise UserError(f"{path}: not a dataset folder saved with save_to_disk ({first_line(e)})") from None


def open_source(spec: dict, root: str) -> Source:
  """The spec's dataset, opened (never downloading unless `dataset` is a hub name): its splits by name."""
  dataset, name, files = spec["dataset"], spec.get("name") or None, spec.get("data_files")
  path = under(root, dataset)
  if is_saved(path):
    if name or files:
      raise UserError(f"hf:{path}: a folder save_to_disk wrote, which load_from_disk reads whole; name and data_files "
                      "are load_dataset's (leave them empty)")
    opened = load_saved(path)
    return Source(path, dict(opened) if hasattr(opened, "keys") else {"train": opened})
  datasets = import_datasets()
  local = os.path.exists(path)
  label = (path if local else dataset) + (f" {name}" if name else "") + (f" (data_files {files!r})" if files else "")
  try:
    opened = datasets.load_dataset(path if local else dataset, name, data_files=data_files(files, root))
  except Exception as e:  # the loaders' many errors (missing files, bad config names, no hub) -> one line
    hint = "" if local or files else f" (no folder {path}; so it was looked up as a hub name)"
    raise UserError(f"hf:{label}: cannot load the dataset{hint}: {first_line(e)}") from None
  return Source(label, dict(opened) if hasattr(opened, "keys") else {"train": opened})


def split_parts(source: Source, split: str) -> list[tuple[str, object, range]]:
  """(split name, Dataset, row indices) of a split spec: a name, a slice ("train[:90%]") or a sum ("train+test")."""
  datasets = import_datasets()
  sizes = {k: len(v) for k, v in source.splits.items()}
  try:
    parts = datasets.ReadInstruction.from_spec(split).to_absolute(sizes)
  except (ValueError, KeyError, AssertionError) as e:
    raise UserError(f"hf:{source.label}: cannot read split {split!r} (splits: {list(sizes)}): "
                    f"{' '.join(str(e).split())}") from None
  return [(p.splitname, source.splits[p.splitname], range(p.from_, p.to)) for p in parts]


def column(features, key: str, label: str):
  """The feature of column `key`, or a UserError listing the columns there are."""
  if key not in features:
    raise UserError(f"hf:{label}: no column {key!r}; the dataset has {list(features)}")
  return features[key]


def is_string(feature) -> bool:
  return getattr(feature, "dtype", None) in ("string", "large_string")


def inner(feature):
  """The element feature of a list column (Sequence, List, LargeList), else None."""
  return getattr(feature, "feature", None)


def string_column(features, key: str, label: str, sequence: bool = False) -> None:
  """Checks that `key` is a string column (or a list of strings, for words)."""
  found = column(features, key, label)
  if not is_string(inner(found) if sequence else found):
    raise UserError(f"hf:{label}: column {key!r} is {found}, expected {'a Sequence of ' if sequence else ''}strings")


def class_name(feature, key: str):
  """A ClassLabel id -> its name (-1 -> None); an id outside the names is an error naming the row."""
  def name(value, where):
    if value is None or value == -1:
      return None
    if not 0 <= value < feature.num_classes:
      raise UserError(f"{where}: field '{key}': class id {value} is outside its {feature.num_classes} names "
                      f"{feature.names[:20]}")
    return feature.names[value]
  return name


def element(feature, key: str):
  """One element of a list column: a ClassLabel id -> its name (-1 -> None, which no tag or label list allows), an
  integer -> its digits, else as it is."""
  if hasattr(feature, "names"):  # ClassLabel
    return class_name(feature, key)
  return lambda v, where: str(v) if isinstance(v, int) and not isinstance(v, bool) else v


def label_decoder(feature, key: str):
  """(value, where) -> the label as corpora records hold it: a class name, None for no label, or the float / list
  the task's kind reads."""
  if hasattr(feature, "names"):
    return class_name(feature, key)
  if inner(feature) is not None:  # a multilabel list: ClassLabel ids as names, other ids left for the kind to read
    item = element(inner(feature), key) if hasattr(inner(feature), "names") else lambda x, where: x
    return lambda v, where: None if v is None else [item(x, where) for x in v]

  def value(v, where):
    if isinstance(v, str):
      return v.strip() or None
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v
  return value


def columns_of(part, keys: list[str], rows: range) -> dict[str, list]:
  """The plain Python values of `keys` in `rows` of a Dataset, whatever format it was saved with."""
  selected = part.select_columns(keys).with_format(None)
  return selected[rows.start:rows.stop] if len(rows) else {k: [] for k in keys}


def joined(values: list) -> str:
  """String cells joined by a space (empty and null cells left out)."""
  return " ".join(v for v in values if v and v.strip())


def read_texts(source: Source, split: str, text_columns: tuple, pair_columns: tuple, label_columns: dict[str, str],
               skip_empty: bool = False) -> list[tuple]:
  """(text or (text, pair), {task: label}, where) of one split; an empty text is an error unless `skip_empty`."""
  records = []
  for name, part, rows in split_parts(source, split):
    for key in (*text_columns, *pair_columns):
      string_column(part.features, key, source.label)
    decoders = {t: label_decoder(column(part.features, key, source.label), key) for t, key in label_columns.items()}
    keys = list(dict.fromkeys((*text_columns, *pair_columns, *label_columns.values())))
    values = columns_of(part, keys, rows)
    for j, i in enumerate(rows):
      where = f"{source.label} split {name} row {i}"
      text, pair = (joined([values[k][j] for k in keys]) for keys in (text_columns, pair_columns))
      if not text or (pair_columns and not pair):
        if skip_empty:
          continue
        empty = text_columns if not text else pair_columns
        raise UserError(f"{where}: text columns {list(empty)}: expected non-empty text, found "
                        f"{[values[k][j] for k in empty]!r}")
      labels = {t: decode(values[label_columns[t]][j], where) for t, decode in decoders.items()}
      records.append(((text, pair) if pair_columns else text, labels, where))
  return records


def read_words(source: Source, split: str, words: str, tags: dict[str, str]) -> list[tuple]:
  """(words, {task: tags}, where) of one split, one tag per word for each task; empty sentences are dropped."""
  records = []
  for name, part, rows in split_parts(source, split):
    string_column(part.features, words, source.label, sequence=True)
    decoders = {}
    for t, key in tags.items():
      found = column(part.features, key, source.label)
      if inner(found) is None:
        raise UserError(f"hf:{source.label}: column {key!r} is {found}, expected a Sequence (one tag per word)")
      decoders[t] = element(inner(found), key)
    values = columns_of(part, list(dict.fromkeys((words, *tags.values()))), rows)
    for j, i in enumerate(rows):
      where = f"{source.label} split {name} row {i}"
      sentence = tuple(values[words][j] or ())
      if not sentence:
        continue
      if not all(isinstance(w, str) and w.strip() for w in sentence):
        raise UserError(f"{where}: field '{words}': expected non-empty words, found {list(sentence)!r}")
      labels = {}
      for t, decode in decoders.items():
        found = values[tags[t]][j] or ()
        labels[t] = tuple(decode(v, where) for v in found)
        if len(found) != len(sentence) or any(v is None for v in labels[t]):
          raise UserError(f"{where}: field '{tags[t]}': expected one tag per word ({len(sentence)} words), found "
                          f"{list(found)!r}")
      records.append((sentence, labels, where))
  return records


def table_rows(path: str):
  """(column names, (where, row) of every row) of a Dataset folder used as a table, ClassLabel ids as their names
  (-1: none) so that they mean what the config's labels say."""
  saved = load_saved(path)
  if hasattr(saved, "keys"):
    raise UserError(f"{path}: a DatasetDict with splits {list(saved)}; name one split's folder as the table, e.g. "
                    f"{os.path.join(path, next(iter(saved), 'train'))}")
  names = list(saved.column_names)
  decoders = {k: label_decoder(f, k) if (hasattr(f, "names") or hasattr(inner(f), "names")) else None
              for k, f in saved.features.items()}
  values = columns_of(saved, names, range(len(saved)))

  def rows():
    for i in range(len(saved)):
      where = f"{path} row {i}"
      yield where, {k: decoders[k](values[k][i], where) if decoders[k] else values[k][i] for k in names}
  return names, rows()
