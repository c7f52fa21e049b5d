"""A corpus per task (the Flair way): read each task's data, pool all corpora, one label slot per task.

`config.tasks.<name>.data` names a corpus:
  format       "conll" (columns: {name: index}, tag: the column of this task, separator), "conllu" (column: upos or
               xpos), "csv" / "jsonl" (text_columns, label_column, header, label_names: a classes.txt, or
               backslash_escapes), or "tweeteval" (train: the task's folder, with {split}_text.txt,
               {split}_labels.txt and mapping.txt), or "tfds": a TensorFlow Datasets dataset prepared on disk (dataset:
               "name/config:version", data_dir, text_columns + label_column features, or words + tag features for
               tagging; train / validation / test are TFDS splits; see `tfds_source`, the optional extra `tfds`).
  train        a path under `config.data.root` (or absolute); for tfds a split name ("train", "train[:90%]").
  validation   a path, or a fraction of train ("0.1") split off with a seed; identical texts stay in one split.
  test         likewise; empty for none.
  downsample   keep this fraction of every split (seeded), as Flair's `corpus.downsample`.
  scheme       the span scheme of the file's tags, when it differs from the task's (IOB1 files read as IOB2, say).
Tasks whose specs differ only in the field that picks their labels (tag, column, label_column) or in the file's
scheme share one corpus:
its examples appear once in the pool and carry a label for each of those tasks, so one encoder pass trains them all.
"""

import dataclasses
import json
import os
import re

import numpy as np

from mtl_jax import readers, sampling, spans, tfds_source
from mtl_jax.data import Table, load_splits, load_test, validation_count
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import Encoded, concat, encode_table, encode_words, tokenize, with_tags
from mtl_jax.tasks import Layout, chosen_tasks, layout_from_config, task_from_config

SPLITS = ("train", "validation", "test")
SELECTOR = {"conll": ("tag",), "conllu": ("column",), "csv": ("label_column",), "jsonl": ("label_column",),
            "tweeteval": (), "tfds": ("label_column", "tag")}

@dataclasses.dataclass
class Corpus:
  """One data source and the tasks it labels; `splits[s]` is a list of (words or text, {task: label(s)}, where)."""
  tasks: list[str]
  spec: dict
  splits: dict[str, list]

  @property
  def kind(self) -> str:
    fmt = self.spec["format"]
    return "words" if fmt in ("conll", "conllu") or (fmt == "tfds" and self.spec.get("words")) else "text"


def plain(value):
  """ConfigDicts and tuples in a spec -> dicts and lists (comparable, JSON-able)."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, dict):
    return {k: plain(v) for k, v in value.items()}
  return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def group_tasks(config) -> list[Corpus]:
  """Tasks grouped by the corpus they read (specs equal but for the label-selecting field)."""
  corpora: dict[str, Corpus] = {}
  for name in config.tasks.keys():
    spec = plain(config.tasks[name].get("data") or {})  # checked by schema.validate
    key = json.dumps({k: v for k, v in spec.items() if k not in (*SELECTOR[spec["format"]], "scheme")}, sort_keys=True)
    corpora.setdefault(key, Corpus([], spec, {})).tasks.append(name)
  return list(corpora.values())


def resolve(root: str, path: str) -> str:
  return path if os.path.isabs(path) else os.path.join(root, path)


def source(spec: dict, root: str, value: str) -> str:
  """A split's file path under the data root; a tfds split name stays as it is."""
  return value if spec["format"] == "tfds" else resolve(root, value)


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
                                selected(config, corpus.tasks, "label_column"))


def read_file(corpus: Corpus, config, path: str) -> list:
  """(item, {task: label}, "file:line") records of one file, for every task of the corpus."""
  spec, tasks = corpus.spec, corpus.tasks
  fmt = spec["format"]
  if fmt == "tfds":
    return read_tfds(corpus, config, path)
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
      names, backslash_escapes=spec.get("backslash_escapes", False), skip_empty=spec.get("skip_empty", False))
      for t in tasks}
  first = per_task[tasks[0]]
  return [(r.text, {t: per_task[t][i].label for t in tasks}, r.where) for i, r in enumerate(first)]


def distinct_texts(records: list) -> list[str]:
  return sorted({json.dumps(r[0]) for r in records})


def split_off(records: list, count: int, seed: int) -> tuple[list, list]:
  """Seeded split of `count` distinct texts; records with the same text stay together (no leak of duplicates)."""
  keys = distinct_texts(records)
  held = set(np.asarray(keys, dtype=object)[np.random.default_rng(seed).permutation(len(keys))[:count]])
  return ([r for r in records if json.dumps(r[0]) not in held], [r for r in records if json.dumps(r[0]) in held])


def is_fraction(value: str) -> bool:
  """A split given as a share of train ("0.1", "10%" or a row count "500") rather than a file path."""
  return bool(re.fullmatch(r"[\d.]+%?", value))


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
  for t in corpus.tasks:
    source, target = config.tasks[t].data.get("scheme"), config.tasks[t].get("scheme")
    if corpus.kind == "words" and source and target and source != target:
      for records in corpus.splits.values():
        for _, labels, _ in records:
          labels[t] = tuple(spans.convert_tags(labels[t], source, target))


def label_set(corpus: Corpus, task: str, scheme: str | None) -> tuple[str, ...]:
  """The labels of `task` in the training split (the words' tags, or the texts' classes), sorted. For a span
  scheme, every prefix of every span type seen: a B-ORG in dev is not unknown because train only had I-ORG."""
  found = set()
  for _, labels, _ in corpus.splits["train"]:
    value = labels[task]
    found.update(value if corpus.kind == "words" else [value] if value is not None else [])
  if scheme:
    types = {spans.split_tag(tag, scheme)[1] for tag in found} - {""}
    found = {"O"} | {f"{p}-{t}" for t in types for p in ("BIES" if scheme == "BIOES" else "BI")}
  return tuple(sorted(found))


def label_ids(values, task, where: str, words=None) -> list[int]:
  """Label names -> ids (None -> -1); a name the training data never had is an error naming the record (and word)."""
  ids = []
  for i, v in enumerate(values):
    if v is None:
      ids.append(-1)
    elif v not in task.labels:
      word = f" word {i + 1} {words[i]!r}:" if words is not None else ""
      raise UserError(f"{where}:{word} label {v!r} of task '{task.name}' does not occur in the training data "
                      f"(known: {list(task.labels)[:20]})")
    else:
      ids.append(task.labels.index(v))
  return ids


def encode_split(corpus: Corpus, split: str, layout: Layout, tokenizer, max_length: int) -> Encoded:
  """One corpus split -> examples with a slot for every task of the layout (-1 for tasks of other corpora)."""
  records, num_tasks = corpus.splits[split], len(layout.tasks)
  labels = np.full((len(records), num_tasks), -1, np.int32)
  weights = np.ones((len(records), num_tasks), np.float32)
  if corpus.kind == "text":
    for t in corpus.tasks:
      pos = layout.names.index(t)
      for i, (_, values, where) in enumerate(records):
        labels[i, pos] = label_ids([values[t]], layout.tasks[pos], where)[0]
    ids, truncated = tokenize([r[0] for r in records], tokenizer, max_length)
    return Encoded(ids, labels, weights, truncated)
  tag_ids = [np.full((len(r[0]), num_tasks), -1, np.int32) for r in records]
  for t in corpus.tasks:
    pos = layout.names.index(t)
    for i, (words, tags, where) in enumerate(records):
      tag_ids[i][:, pos] = label_ids(tags[t], layout.tasks[pos], where, words)
  return encode_words([r[0] for r in records], tag_ids, labels, weights, tokenizer, max_length)


def load(config, tokenizer, max_length: int) -> tuple[Layout, dict[str, Encoded], Encoded, Encoded | None]:
  """(layout, train examples by corpus ("pos+ner": the tasks it labels), validation pool, test pool or None)."""
  corpora = group_tasks(config)
  for corpus in corpora:
    load_corpus(corpus, config, config.seed)
    convert_scheme(corpus, config)
  found = {t: label_set(c, t, config.tasks[t].get("scheme")) for c in corpora for t in c.tasks}
  layout = Layout(tuple(task_from_config(t, config.tasks[t], found[t]) for t in config.tasks.keys()))
  encoded = {s: [encode_split(c, s, layout, tokenizer, max_length) for c in corpora] for s in SPLITS}
  for c, part in zip(corpora, encoded["train"]):
    if not len(part):
      raise UserError(f"config.tasks.{c.tasks[0]}.data.train: no training examples")
  tagged = bool(layout.of_kind("tagging"))  # a pool of text corpora only still needs (empty) tags for tagging heads
  pools = [[with_tags(p) if tagged else p for p in encoded[s] if len(p)] for s in SPLITS[1:]]
  evaluate = [concat(parts) if parts else None for parts in pools]
  if evaluate[0] is None:
    raise UserError("config.tasks: no task has validation data (give data.validation: a file or a fraction)")
  train = {"+".join(c.tasks): part for c, part in zip(corpora, encoded["train"])}
  return layout, train, evaluate[0], evaluate[1]


def load_data(config, tokenizer, max_length: int) -> tuple[Layout, dict[str, Encoded], Encoded, Encoded | None]:
  """(layout, training examples by corpus name, validation, test or None): one table (`config.data.train`) whose
  rows label every task, or a corpus per task (`config.tasks.<name>.data`)."""
  chosen = chosen_tasks(config)
  if not config.data.get("train"):
    only = config.copy_and_resolve_references()
    with only.unlocked():
      for name in set(config.tasks.keys()) - set(chosen):
        del only.tasks[name]
    return load(only, tokenizer, max_length)
  full = layout_from_config(config)  # every labels column is read and checked, the chosen ones kept
  keep = [i for i, name in enumerate(full.names) if name in chosen]
  tables = (*load_splits(config.data, full, config.seed), load_test(config.data, full))  # test: None without one
  train, validation, test = (None if t is None else encode_table(
      Table(t.texts, t.labels[:, keep], t.weights[:, keep]), tokenizer, max_length) for t in tables)
  return Layout(tuple(full.tasks[i] for i in keep)), {"table": train}, validation, test
