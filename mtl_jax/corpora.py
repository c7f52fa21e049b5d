"""The data of a run: its corpora read, the task layout built once, every split pooled with one label slot per task.

A run reads either one table (`config.data.train`, see mtl_jax/data.py), a corpus whose rows label every task, or a
corpus per task (the Flair way), named by `config.tasks.<name>.data` (its fields per format: mtl_jax/schema.py,
DATA_FIELDS). Tasks whose specs differ only in the field that picks their labels (tag, column, label_column) or in
the file's scheme share one corpus: its examples appear once in the pool and carry a label for each of those tasks,
so one encoder pass trains them all. A split given as a fraction of train is split off with the seed, identical
texts staying in one split (a table splits by rows).
"""

import dataclasses
import glob
import json
import os
from collections.abc import Iterator

import jax
import numpy as np
import tqdm

from mtl_jax import hf_source, kinds, readers, sampling, spans, tfds_source, token_cache
from mtl_jax.data import (
  is_fraction,
  no_rows,
  read_chunks,
  split_validation,
  splittable,
  table_reader,
  validation_count,
)
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import (
  Encoded,
  concat,
  encode_table,
  encode_words,
  tokenize_pairs,
  with_tags,
  with_targets,
)
from mtl_jax.run_state import log
from mtl_jax.tasks import DEFAULTS, Layout, build_layout, chosen_tasks, layout_from_config, task_order

SPLITS = ("train", "validation", "test")
SELECTOR = {"conll": ("tag",), "conllu": ("column",), "csv": ("label_column",), "jsonl": ("label_column",),
            "tweeteval": (), "tfds": ("label_column", "tag"), "hf": ("label_column", "tag")}
DATASETS = ("tfds", "hf")  # formats whose split values name a dataset's splits, not files

@dataclasses.dataclass
class Corpus:
  """One data source and the tasks it labels. `splits[s]` is a list of (words or text, {task: label(s)}, where)
  records, or for the "table" format its examples already encoded, with the trained tasks' columns (None: no such
  split)."""
  tasks: list[str]  # every task it labels (a table: every task of the config, trained or not)
  spec: dict
  splits: dict[str, "list | Encoded | None"]
  fields: dict[str, str] = dataclasses.field(default_factory=dict)  # each task's label column / tag, for messages
  opened: object = dataclasses.field(default=None, compare=False)  # an hf dataset, opened once for all its splits

  @property
  def kind(self) -> str:
    fmt = self.spec["format"]
    return "words" if fmt in ("conll", "conllu") or (fmt in DATASETS and self.spec.get("words")) else "text"


def plain(value):
  """ConfigDicts and tuples in a spec -> dicts and lists (comparable, JSON-able)."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, dict):
    return {k: plain(v) for k, v in value.items()}
  return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def group_tasks(config, chosen: list[str]) -> list[Corpus]:
  """The corpora of the `chosen` tasks: the table, which labels every task (in its label order), or the tasks
  grouped by the corpus they read (specs equal but for the label-selecting field)."""
  if config.data.get("train"):
    order = task_order(config)
    table = {"format": "table", **{split: str(config.data.get(split) or "") for split in SPLITS}}
    return [Corpus(order, table, {})]
  corpora: dict[str, Corpus] = {}
  for name in (n for n in config.tasks.keys() if n in chosen):
    spec = plain(config.tasks[name].get("data") or {})  # checked by schema.validate
    key = json.dumps({k: v for k, v in spec.items() if k not in (*SELECTOR[spec["format"]], "scheme")}, sort_keys=True)
    corpus = corpora.setdefault(key, Corpus([], spec, {}))
    corpus.tasks.append(name)
    corpus.fields[name] = next((str(spec[f]) for f in SELECTOR[spec["format"]] if f in spec), "label")
  return list(corpora.values())


def resolve(root: str, path: str) -> str:
  return path if os.path.isabs(path) else os.path.join(root, path)


def source(spec: dict, root: str, value: str) -> str:
  """A split's file path under the data root; a tfds or hf split name stays as it is."""
  return value if spec["format"] in DATASETS else resolve(root, value)


def selected(config, tasks: list[str], field: str) -> dict[str, str]:
  """{task: its data.<field>} (the feature or column each task reads its labels from), all required."""
  missing = [t for t in tasks if config.tasks[t].data.get(field) is None]
  if missing:
    raise UserError(f"config.tasks.{missing[0]}.data.{field}: required for this format")
  return {t: config.tasks[t].data[field] for t in tasks}


def read_tfds(corpus: Corpus, config, split: str) -> list:
  """(item, {task: label}, where) records of one TFDS split: texts with classes, or words with tags."""
  spec, where = corpus.spec, tfds_source.data_dir(corpus.spec, config.data.root)
  if corpus.kind == "words":
    return tfds_source.read_words(spec["dataset"], where, split, spec["words"], selected(config, corpus.tasks, "tag"))
  return tfds_source.read_texts(spec["dataset"], where, split, tuple(spec.get("text_columns", ("text",))),
                                selected(config, corpus.tasks, "label_column"),
                                tuple(spec.get("text_pair_columns", ())))


def read_hf(corpus: Corpus, config, split: str) -> list:
  """(item, {task: label}, where) records of one split of a Hugging Face dataset: texts (or text pairs) with labels,
  or words with tags."""
  spec = corpus.spec
  if corpus.opened is None:
    corpus.opened = hf_source.open_source(spec, config.data.root)
  source = corpus.opened
  if corpus.kind == "words":
    return hf_source.read_words(source, split, spec["words"], selected(config, corpus.tasks, "tag"))
  return hf_source.read_texts(source, split, tuple(spec.get("text_columns", ("text",))),
                              tuple(spec.get("text_pair_columns", ())), selected(config, corpus.tasks, "label_column"),
                              spec.get("skip_empty", False))


def read_file(corpus: Corpus, config, path: str) -> list:
  """(item, {task: label}, "file:line") records of one file, for every task of the corpus."""
  spec, tasks = corpus.spec, corpus.tasks
  fmt = spec["format"]
  if fmt == "tfds":
    return read_tfds(corpus, config, path)
  if fmt == "hf":
    return read_hf(corpus, config, path)
  if fmt == "conll":
    sentences = readers.read_conll(path, spec["columns"], spec.get("word_column", 0), spec.get("separator"))
    picked = {t: config.tasks[t].data.tag for t in tasks}
    return [(s.words, {t: s.tags[c] for t, c in picked.items()}, s.where) for s in sentences]
  if fmt == "conllu":
    per_column = {t: readers.read_conllu(path, config.tasks[t].data.get("column", "upos")) for t in tasks}
    first = per_column[tasks[0]]
    return [(s.words, {t: next(iter(per_column[t][i].tags.values())) for t in tasks}, s.where)
            for i, s in enumerate(first)]
  if fmt == "tweeteval":
    folder, split = os.path.dirname(path), os.path.basename(path)
    mapping = readers.read_mapping(os.path.join(folder, "mapping.txt"))
    rows = readers.read_paired_text_labels(os.path.join(folder, f"{split}_text.txt"),
                                           os.path.join(folder, f"{split}_labels.txt"), mapping, skip_empty=True)
    return [(r.text, {tasks[0]: r.label}, r.where) for r in rows]
  names = None
  if spec.get("label_names"):
    names = {str(i + 1): n for i, n in enumerate(readers.read_label_list(resolve(config.data.root,
                                                                                  spec["label_names"])))}
  per_task = {t: readers.read_text_classification(
      path, tuple(spec.get("text_columns", ("text",))), config.tasks[t].data.label_column, spec.get("header", True),
      names, backslash_escapes=spec.get("backslash_escapes", False), skip_empty=spec.get("skip_empty", False),
      pair_columns=tuple(spec.get("text_pair_columns", ()))) for t in tasks}
  first = per_task[tasks[0]]
  return [((r.text, r.pair) if r.pair is not None else r.text, {t: per_task[t][i].label for t in tasks}, r.where)
          for i, r in enumerate(first)]


def distinct_texts(records: list) -> list[str]:
  return sorted({json.dumps(r[0]) for r in records})


def split_off(records: list, count: int, seed: int) -> tuple[list, list]:
  """Seeded split of `count` distinct texts; records with the same text stay together (no leak of duplicates)."""
  keys = distinct_texts(records)
  held = set(np.asarray(keys, dtype=object)[np.random.default_rng(seed).permutation(len(keys))[:count]])
  return ([r for r in records if json.dumps(r[0]) not in held], [r for r in records if json.dumps(r[0]) in held])


def progress(chunks: Iterator[Encoded], name: str) -> Iterator[Encoded]:
  """`chunks`, with a progress bar of the rows tokenized so far and their rate (process 0)."""
  with tqdm.tqdm(desc=f"tokenizing {name}", unit=" rows", unit_scale=True, dynamic_ncols=True, leave=False,
                 disable=None if jax.process_index() == 0 else True) as bar:  # None: not on a non-TTY
    for chunk in chunks:
      bar.update(len(chunk))
      yield chunk


def table_examples(path: str, config, layout: Layout, tokenizer, max_length: int) -> Encoded:
  """Every row of a table file, validated against every task of the table (`layout`: the config's) and tokenized:
  mapped from the token cache, or read in chunks (in constant memory), tokenized and written there."""
  table_reader(path)  # a missing file, an unknown format: the UserError comes before the cache looks at the file
  chunks = lambda share=(0, 1): progress((encode_table(t, tokenizer, max_length)
                                          for t in read_chunks(path, layout, share)), os.path.basename(path))
  if (root := token_cache.cache_dir(config.data)) is None:
    return concat(list(chunks()))
  key = {"table": token_cache.file_state(path), "layout": layout.to_dict(), "max_length": max_length,
         "tokenizer": token_cache.tokenizer_id(tokenizer)}
  if not splittable(path):  # read by process 0 alone (a gzip file, CSV, Parquet, a saved dataset)
    return token_cache.get(root, key, lambda entry: entry.add("rows", chunks()), log)[0]["rows"]
  if (rows := token_cache.get_in_shares(root, key, "rows", chunks, log)) is None:  # every share empty
    raise no_rows(path)
  return rows


def load_table(corpus: Corpus, config, tokenizer, max_length: int) -> None:
  """Fills a table's corpus.splits: train, validation (a file, or rows split off train with the seed), test; each
  with the columns of the trained tasks only."""
  layout, chosen = layout_from_config(config), chosen_tasks(config)
  keep = [t for t, name in enumerate(layout.names) if name in chosen]
  columns = np.concatenate([np.arange(layout.target_total)[layout.target_columns(t)] for t in keep]).astype(int)
  read = lambda path: table_examples(path, config, layout, tokenizer, max_length).select(keep, columns)
  train, spec, test = read(config.data.train), str(config.data.validation), str(config.data.get("test") or "")
  train, validation = split_validation(train, spec, config.seed) if is_fraction(spec) else (train, read(spec))
  corpus.splits = {"train": train, "validation": validation, "test": read(test) if test else None}


def load_corpus(corpus: Corpus, config, seed: int) -> None:
  """Fills corpus.splits from its files: reads, splits off missing dev/test, downsamples."""
  spec, root = corpus.spec, config.data.root
  where = f"config.tasks.{corpus.tasks[0]}.data"
  corpus.splits["train"] = read_file(corpus, config, source(spec, root, spec["train"]))
  num_texts = len(distinct_texts(corpus.splits["train"]))  # fractions are of the whole file
  for i, split in enumerate(SPLITS[1:], 1):
    value = str(spec.get(split) or "")
    if not value:
      corpus.splits[split] = []
    elif not is_fraction(value):
      corpus.splits[split] = read_file(corpus, config, source(spec, root, value))
    else:
      count = validation_count(value, num_texts, f"{where}.{split}")
      corpus.splits["train"], corpus.splits[split] = split_off(corpus.splits["train"], count, seed + i)
  if (fraction := spec.get("downsample", 1.0)) < 1.0:
    for i, split in enumerate(SPLITS):
      if corpus.splits[split]:
        keep = sampling.downsample(len(corpus.splits[split]), fraction, seed + 10 + i)
        corpus.splits[split] = [corpus.splits[split][k] for k in keep]


def convert_scheme(corpus: Corpus, config) -> None:
  """Rewrites tags read in the file's scheme (`data.scheme`) into the task's scheme."""
  for t in corpus.tasks if corpus.kind == "words" else ():
    source, target = config.tasks[t].data.get("scheme"), config.tasks[t].get("scheme")
    if source and target and source != target:
      for records in corpus.splits.values():
        for _, labels, _ in records:
          labels[t] = tuple(spans.convert_tags(labels[t], source, target))


def label_set(corpus: Corpus, task: str, scheme: str | None) -> tuple[str, ...]:
  """The labels of `task` in the training split (the words' tags, or the texts' classes), sorted. For a span
  scheme, every prefix of every span type seen: a B-ORG in dev is not unknown because train only had I-ORG. A
  table's labels are the config's (empty here)."""
  if corpus.spec["format"] == "table":
    return ()
  found, field = set(), corpus.fields.get(task, "label")
  for _, labels, where in corpus.splits["train"]:
    value = labels[task] if corpus.kind == "words" else class_name(labels[task], where, field)
    found.update(value if corpus.kind == "words" else [value] if value is not None else [])
  if scheme:
    types = set()
    for tag in sorted(found):
      try:
        types.add(spans.split_tag(tag, scheme)[1])
      except ValueError as e:  # a tag set that is not spans (POS) or in another scheme: name where it occurs
        where = next(w for _, labels, w in corpus.splits["train"] if tag in labels[task])
        raise UserError(f"{where}: {field} {e}, the scheme config.tasks.{task}.scheme names") from None
    types -= {""}
    found = {"O"} | {f"{p}-{t}" for t in types for p in ("BIES" if scheme == "BIOES" else "BI")}
  return tuple(sorted(found))


def class_name(value, where: str, field: str) -> str | None:
  """A text corpus's class label as a name: a string, or an integer (a JSONL 1 or 1.0 is "1"); None for no label.
  Other values (a score, a list) belong to regression or multilabel tasks: an error naming the record."""
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, float) and value.is_integer():
    return str(int(value))
  raise UserError(f"{where}: field '{field}': expected a class name or an integer for a classification task, found "
                  f"{value!r}")


def kind_of(config, task: str) -> str:
  return config.tasks[task].get("kind", DEFAULTS["kind"])


def label_ids(values, task, where: str, words=None, field: str = "") -> list[int]:
  """Label names -> ids (None -> -1); a name the training data never had is an error naming the record (and word,
  or the record's field)."""
  ids = []
  for i, v in enumerate(values):
    if v is None:
      ids.append(-1)
    elif v not in task.labels:
      word = f" word {i + 1} {words[i]!r}:" if words is not None else f" field '{field}':" if field else ""
      raise UserError(f"{where}:{word} label {v!r} of task '{task.name}' does not occur in the training data "
                      f"(known: {list(task.labels)[:20]})")
    else:
      ids.append(task.labels.index(v))
  return ids


def encode_split(corpus: Corpus, split: str, layout: Layout, tokenizer, max_length: int) -> Encoded | None:
  """One corpus split -> examples with a slot for every task of the layout (-1 for tasks of other corpora)."""
  records, num_tasks = corpus.splits[split], len(layout.tasks)
  if corpus.spec["format"] == "table":  # encoded already, with the trained tasks' columns
    return records
  labels = np.full((len(records), num_tasks), -1, np.int32)
  weights = np.ones((len(records), num_tasks), np.float32)
  targets = np.zeros((len(records), layout.target_total), np.float32)
  if corpus.kind == "text":
    for t in corpus.tasks:
      pos = layout.names.index(t)
      task = layout.tasks[pos]
      kind, field, columns = kinds.KINDS[task.kind], corpus.fields.get(t, "label"), layout.target_columns(pos)
      for i, (_, values, where) in enumerate(records):
        if task.target_width:  # multilabel, regression: the kind reads the cell
          labels[i, pos], targets[i, columns] = kind.parse(values[t], task, where, f"'{field}'")
        else:
          labels[i, pos] = label_ids([class_name(values[t], where, field)], task, where, field=field)[0]
    texts = [r[0] if isinstance(r[0], str) else r[0][0] for r in records]
    pairs = [None if isinstance(r[0], str) else r[0][1] for r in records]  # a record of a text pair: (text, pair)
    ids, types, cut = tokenize_pairs(texts, pairs, tokenizer, max_length)
    return Encoded(ids, labels, weights, cut, targets=targets if targets.shape[1] else None,
                   type_ids=types if any(p is not None for p in pairs) else None)
  tag_ids = [np.full((len(r[0]), num_tasks), -1, np.int32) for r in records]
  for t in corpus.tasks:
    pos = layout.names.index(t)
    for i, (words, tags, where) in enumerate(records):
      tag_ids[i][:, pos] = label_ids(tags[t], layout.tasks[pos], where, words)
  return encode_words([r[0] for r in records], tag_ids, labels, weights, tokenizer, max_length)


def source_paths(corpus: Corpus, config) -> list[str] | None:
  """The local files and folders a corpus reads (what its token cache entry's key fingerprints); None when it reads
  something that is not local (a hub dataset), which is then not cached."""
  spec, root = corpus.spec, config.data.root
  if spec["format"] == "hf":
    path, files = hf_source.under(root, spec["dataset"]), hf_source.data_files(spec.get("data_files"), root)
    if os.path.exists(path):
      return [path]
    patterns = [p for f in (files.values() if isinstance(files, dict) else [files] if files else [])
                for p in ([f] if isinstance(f, str) else f)]
    return patterns if patterns and all(glob.glob(p) for p in patterns) else None  # else files of a hub dataset
  if spec["format"] == "tfds":
    folder = os.path.join(tfds_source.data_dir(spec, root), spec["dataset"].split(":")[0])
    return [folder] if os.path.isdir(folder) else None
  paths = [resolve(root, str(spec[s])) for s in SPLITS if spec.get(s) and not is_fraction(str(spec[s]))]
  if spec["format"] == "tweeteval":  # train names a split in the task's folder
    paths = [os.path.dirname(p) for p in paths]
  return paths + ([resolve(root, spec["label_names"])] if spec.get("label_names") else [])


def corpora_key(config, corpora: list[Corpus], chosen: list[str], tokenizer, max_length: int) -> dict | None:
  """What a run's corpora's examples depend on (None: not cacheable): the sources' fingerprints, their specs, each
  trained task's kind, scheme and configured labels in layout order, the seed (fractions split off), tokenizer and
  max length."""
  paths = [source_paths(c, config) for c in corpora]
  if any(p is None for p in paths):
    return None
  tasks = [[n, *(plain(config.tasks[n].get(f)) for f in ("kind", "scheme", "labels", "data"))]
           for n in task_order(config) if n in chosen]
  return {"corpora": [[c.tasks, c.spec] for c in corpora], "tasks": tasks, "seed": config.seed,
          "sources": token_cache.sources_state(p for group in paths for p in group), "max_length": max_length,
          "tokenizer": token_cache.tokenizer_id(tokenizer)}


def read_corpora(config, corpora: list[Corpus], chosen: list[str], tokenizer,
                 max_length: int) -> tuple[dict[str, tuple[str, ...]], dict[str, list[Encoded | None]]]:
  """(the labels each task's training data has, where its kind takes them from the data; each split's examples per
  corpus), read, split, converted and encoded (`encode_split`)."""
  for corpus in corpora:
    if corpus.spec["format"] == "table":
      load_table(corpus, config, tokenizer, max_length)
    else:
      load_corpus(corpus, config, config.seed)
      convert_scheme(corpus, config)
  label_sets = {t: label_set(c, t, config.tasks[t].get("scheme")) for c in corpora for t in c.tasks
                if kinds.KINDS[kind_of(config, t)].labels_from_data}
  layout = build_layout(config, chosen, label_sets)
  return label_sets, {s: [encode_split(c, s, layout, tokenizer, max_length) for c in corpora] for s in SPLITS}


def cached_corpora(config, corpora: list[Corpus], chosen: list[str], tokenizer,
                   max_length: int) -> tuple[dict[str, tuple[str, ...]], dict[str, list[Encoded | None]]]:
  """`read_corpora`, through the token cache: a table caches each file's rows itself (mapped without reading them
  whole); other corpora are cached together, their examples and label sets one entry."""
  root = token_cache.cache_dir(config.data)
  key = None if root is None or corpora[0].spec["format"] == "table" else corpora_key(
      config, corpora, chosen, tokenizer, max_length)
  if key is None:
    return read_corpora(config, corpora, chosen, tokenizer, max_length)

  def build(entry: token_cache.EntryWriter) -> None:
    label_sets, encoded = read_corpora(config, corpora, chosen, tokenizer, max_length)
    entry.extra = {"label_sets": label_sets}
    for split, parts in encoded.items():
      for i, part in enumerate(parts):
        if part is not None:
          entry.add(f"{split}.{i}", [part])

  datasets, extra = token_cache.get(root, key, build, log)
  return ({t: tuple(labels) for t, labels in extra["label_sets"].items()},
          {s: [datasets.get(f"{s}.{i}") for i in range(len(corpora))] for s in SPLITS})


def load_data(config, tokenizer, max_length: int) -> tuple[Layout, dict[tuple[str, ...], Encoded], Encoded,
                                                          Encoded | None]:
  """(layout, training examples by corpus (keyed by the tasks it labels), validation pool, test pool or None) of
  the tasks `config.train.tasks` chooses, read from the table or from each task's corpus (or the token cache)."""
  chosen = chosen_tasks(config)
  corpora = group_tasks(config, chosen)
  label_sets, encoded = cached_corpora(config, corpora, chosen, tokenizer, max_length)
  layout = build_layout(config, chosen, label_sets)
  encoded = {s: [None if part is None else with_targets(part, layout.target_total) for part in parts]
             for s, parts in encoded.items()}
  for c, part in zip(corpora, encoded["train"]):
    if not len(part):
      raise UserError(f"config.tasks.{c.tasks[0]}.data.train: no training examples")
  words = any(k.reads_words for k in kinds.of_layout(layout))  # text corpora in such a pool need (empty) tags
  pools = [[with_tags(p) if words else p for p in encoded[s] if p is not None and len(p)] for s in SPLITS[1:]]
  evaluate = [concat(parts) if parts else None for parts in pools]
  if evaluate[0] is None:
    raise UserError("config.tasks: no task has validation data (give data.validation: a file or a fraction)")
  trained = lambda c: tuple(t for t in c.tasks if t in layout.names)  # a table's columns may hold untrained tasks
  return layout, {trained(c): part for c, part in zip(corpora, encoded["train"])}, evaluate[0], evaluate[1]


def describe(layout: Layout, train: Encoded, validation: Encoded, test: Encoded | None, max_length: int) -> str:
  """One line on what a run trains on."""
  return (f"data: {len(train)} training examples ({train.truncated} cut to {max_length} tokens), {len(validation)} "
          f"validation, {len(test) if test else 0} test; tasks {dict(zip(layout.names, layout.group_sizes))}")
