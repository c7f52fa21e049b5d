"""The `tfds` data source: tiny TFDS datasets prepared in tmp_path (array_record / parquet, no TensorFlow, no network)
read back through `corpora.load_data`, and the errors for a missing dataset, split, feature or extra.

Needs the optional extra (`pip install 'mtl_jax[tfds]'`): skipped without it on a developer machine, failed in CI.
"""

import collections
import importlib.util
import os
import re
import sys
import types

import ml_collections
import numpy as np
import pytest
from runs import corpus_config as config

from mtl_jax import corpora, schema, tfds_source
from mtl_jax.errors import UserError
from mtl_jax.train import train_and_evaluate

TOPICS = ("World", "Sports", "Business")
NER = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
POS = ("NNP", "VBZ", "IN", "DT", "NN")


@pytest.fixture(scope="module")
def tfds():
  """tensorflow_datasets; missing: a failure in CI (the extra is part of its install), else a skip."""
  try:
    import tensorflow_datasets
  except ImportError as e:
    if os.environ.get("CI"):
      pytest.fail(f"tensorflow_datasets is not importable in CI ({e}): install '.[test,tfds]'", pytrace=False)
    pytest.skip(f"tensorflow_datasets not installed ({e}): pip install 'mtl_jax[tfds]'")
  return tensorflow_datasets


def prepare(tfds, data_dir, dataset: str, features: dict, splits: dict[str, list[dict]], file_format="array_record"):
  """Writes `splits` as the TFDS dataset `dataset` (version 1.0.0) under data_dir, as `tfds build` would."""
  class TinyBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # read back from files, not this code
    name = dataset
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(rows) for split, rows in splits.items()}

    def _generate_examples(self, rows):
      yield from enumerate(rows)

  TinyBuilder(data_dir=str(data_dir), file_format=file_format).download_and_prepare()


def news_rows(n: int, offset: int = 0) -> list[dict]:
  """Texts with a topic (ClassLabel) and an urgency (ClassLabel, -1 = unlabelled for every third)."""
  return [{"title": f"headline {i}", "body": f"story number {i} about {TOPICS[i % 3].lower()}", "topic": i % 3,
           "urgent": -1 if i % 3 == 2 else i % 2} for i in range(offset, offset + n)]


def prepare_news(tfds, root, file_format="array_record"):
  features = {"title": tfds.features.Text(), "body": tfds.features.Text(),
              "topic": tfds.features.ClassLabel(names=TOPICS), "urgent": tfds.features.ClassLabel(names=("no", "yes"))}
  rows = {"train": news_rows(30), "test": news_rows(8, offset=100)}
  prepare(tfds, os.path.join(root, "tfds"), "tiny_news", features, rows, file_format)
  return rows


def sentence_rows(n: int, offset: int = 0) -> list[dict]:
  """Sentences of 1-4 words with NER (IOB2) and POS tags as ClassLabel ids; every fifth is empty."""
  words = ("Peter", "lives", "in", "Berlin")
  ner, pos = (1, 0, 0, 3), (0, 1, 2, 0)
  return [{"tokens": words[:(i % 5)], "ner": ner[:(i % 5)], "pos": pos[:(i % 5)]} for i in range(offset, offset + n)]


def prepare_ner(tfds, root):
  features = {"tokens": tfds.features.Sequence(tfds.features.Text()),
              "ner": tfds.features.Sequence(tfds.features.ClassLabel(names=NER)),
              "pos": tfds.features.Sequence(tfds.features.ClassLabel(names=POS))}
  rows = {"train": sentence_rows(20), "validation": sentence_rows(6, offset=20)}
  prepare(tfds, os.path.join(root, "my_data_dir"), "tiny_ner", features, rows)
  return rows


def news_tasks(**spec) -> dict:
  spec = dict(dict(format="tfds", dataset="tiny_news", text_columns=("title", "body"), train="train[:80%]",
                   validation="train[80%:]", test="test"), **spec)
  return dict(topic=dict(kind="classification", data=dict(spec, label_column="topic")),
              urgency=dict(kind="classification", data=dict(spec, label_column="urgent")))


def ner_tasks(**spec) -> dict:
  spec = dict(dict(format="tfds", dataset="tiny_ner:1.0.0", data_dir="my_data_dir", words="tokens", train="train",
                   validation="validation"), **spec)
  return dict(ner=dict(kind="tagging", scheme="IOB2", data=dict(spec, tag="ner")),
              pos=dict(kind="tagging", data=dict(spec, tag="pos")))


def expected_news(rows: list[dict]) -> list[tuple]:
  """(text, topic, urgency or None) of each row, sorted: what reading the dataset back must give."""
  urgency = {-1: None, 0: "no", 1: "yes"}
  return sorted((f"{r['title']} {r['body']}", TOPICS[r["topic"]], urgency[r["urgent"]]) for r in rows)


def decoded(data, layout, task: str) -> list:
  pos = layout.names.index(task)
  return [layout.tasks[pos].labels[i] if i >= 0 else None for i in data.labels[:, pos]]


@pytest.mark.parametrize("file_format", ["array_record", "parquet"])
def test_text_classification_reads_split_slices_class_names_and_missing_labels(tfds, tokenizer, tmp_path,
                                                                               file_format):
  rows = prepare_news(tfds, tmp_path, file_format)
  c = config(tmp_path, **news_tasks())
  (corpus,) = corpora.group_tasks(c, list(c.tasks.keys()))  # two label features of one dataset: one corpus
  records = {s: corpora.read_tfds(corpus, c, split) for s, split in
             (("train", "train[:80%]"), ("validation", "train[80%:]"), ("test", "test"))}
  got = sorted((text, labels["topic"], labels["urgency"]) for s in ("train", "validation") for text, labels, _ in
               records[s])
  assert got == expected_news(rows["train"])
  assert sorted((t, a["topic"], a["urgency"]) for t, a, _ in records["test"]) == expected_news(rows["test"])
  assert all(where.startswith("tfds:tiny_news test example ") for _, _, where in records["test"])

  layout, train, validation, test = corpora.load_data(c, tokenizer, 64)
  assert list(train) == [("topic", "urgency")]
  assert (len(train[("topic", "urgency")]), len(validation), len(test)) == (24, 6, 8)
  assert layout.tasks[layout.names.index("topic")].labels == ("Business", "Sports", "World")
  assert layout.tasks[layout.names.index("urgency")].labels == ("no", "yes")
  both = [train[("topic", "urgency")], validation]
  topics = collections.Counter(t for d in both for t in decoded(d, layout, "topic"))
  assert topics == collections.Counter(TOPICS[r["topic"]] for r in rows["train"])
  urgency = collections.Counter(u for d in both for u in decoded(d, layout, "urgency"))
  assert urgency == collections.Counter(e[2] for e in expected_news(rows["train"]))  # -1 -> None -> unlabelled
  assert sorted(zip(decoded(test, layout, "topic"), decoded(test, layout, "urgency"), strict=True)) == sorted(
      e[1:] for e in expected_news(rows["test"]))


def test_token_tagging_reads_words_and_tags_of_two_tasks(tfds, tokenizer, tmp_path):
  rows = prepare_ner(tfds, tmp_path)
  c = config(tmp_path, **ner_tasks())
  layout, train, validation, test = corpora.load_data(c, tokenizer, 64)
  assert list(train) == [("ner", "pos")] and test is None
  data = train[("ner", "pos")]
  assert len(np.unique(data.sentence)) == 16  # 20 sentences, every fifth empty (dropped)
  ner = layout.tasks[layout.names.index("ner")]
  assert ner.labels == ("B-LOC", "B-PER", "I-LOC", "I-PER", "O")  # all prefixes of the span types seen
  for split, encoded in (("train", data), ("validation", validation)):
    got = {}
    for task in ("ner", "pos"):
      pos = layout.names.index(task)
      got[task] = sorted(tuple(layout.tasks[pos].labels[t] for t in encoded.tags[i][encoded.starts[i], pos])
                         for i in range(len(encoded)))
    expected = [r for r in rows[split] if r["tokens"]]
    assert got["ner"] == sorted(tuple(NER[t] for t in r["ner"]) for r in expected)
    assert got["pos"] == sorted(tuple(POS[t] for t in r["pos"]) for r in expected)


def test_trains_and_evaluates_on_a_tfds_text_corpus_and_a_tfds_tagging_corpus(tfds, tmp_path):
  prepare_news(tfds, tmp_path)
  prepare_ner(tfds, tmp_path)
  from configs import pos_chunk  # corpus-per-task defaults; smoke: tiny random encoder, a few steps
  c = pos_chunk.get_config("smoke")
  c.data.root = str(tmp_path)
  c.tasks = ml_collections.ConfigDict(dict(**news_tasks(), **ner_tasks()))
  c.train.update(dict(steps=4, eval_every=4, batch_size=8))
  final = train_and_evaluate(c, str(tmp_path / "run"))
  assert {"eval/topic/accuracy", "eval/urgency/accuracy", "eval/ner/f1", "eval/pos/accuracy",
          "test/topic/accuracy"} <= set(final)


def test_fraction_validation_and_downsample_apply_to_tfds_splits(tfds, tokenizer, tmp_path):
  prepare_news(tfds, tmp_path)
  c = config(tmp_path, **news_tasks(train="train", validation="0.2", test="", downsample=0.5))
  layout, train, validation, test = corpora.load_data(c, tokenizer, 64)
  assert (len(train[("topic", "urgency")]), len(validation), test) == (12, 3, None)  # 30 -> 24 + 6 -> halves


def test_missing_dataset_names_it_and_its_data_dir(tfds, tokenizer, tmp_path):
  c = config(tmp_path, **news_tasks(dataset="not_prepared/plain:1.0.0"))
  where = re.escape(os.path.join(str(tmp_path), "tfds"))
  with pytest.raises(UserError, match=rf"tfds dataset 'not_prepared/plain:1.0.0' is not prepared in data_dir "
                                      rf"{where} \(nothing is downloaded here\): prepare it beforehand.*tfds build"):
    corpora.load_data(c, tokenizer, 64)


def test_unknown_split_and_feature_are_named(tfds, tokenizer, tmp_path):
  prepare_news(tfds, tmp_path)
  with pytest.raises(UserError, match=r"tfds:tiny_news: cannot read split 'dev' \(splits: \['test', 'train'\]|"
                                      r"tfds:tiny_news: cannot read split 'dev' \(splits: \['train', 'test'\]"):
    corpora.load_data(config(tmp_path, **news_tasks(validation="dev")), tokenizer, 64)
  with pytest.raises(UserError, match=r"tfds:tiny_news: no feature 'headline'; the dataset has \['body', 'title', "
                                      r"'topic', 'urgent'\]"):
    corpora.load_data(config(tmp_path, **news_tasks(text_columns=("headline",))), tokenizer, 64)
  with pytest.raises(UserError, match=r"tfds:tiny_news: feature 'topic' is ClassLabel\(.*\), expected Text"):
    corpora.load_data(config(tmp_path, **news_tasks(text_columns=("title", "topic"))), tokenizer, 64)
  with pytest.raises(UserError, match=r"config.tasks.topic.data.dataset: a TFDS dataset is required"):
    schema.validate(config(tmp_path, **news_tasks(dataset="")))


class FakeBuilder:
  """A prepared dataset as split_examples sees it: its info (formats, split sizes) and whole-split sources."""

  def __init__(self, file_format, sources: dict[str, list], num_examples: dict[str, int]):
    splits = {k: types.SimpleNamespace(num_examples=n) for k, n in num_examples.items()}
    formats = {file_format}
    self.info = types.SimpleNamespace(file_format=file_format, available_file_formats=lambda: formats, splits=splits)
    self.sources = sources

  def as_data_source(self, split):
    return FakeSource(self.sources[split])


class FakeSource(list):
  def __getitems__(self, keys):
    return [self[k] for k in keys]


def test_tfrecord_without_tensorflow_says_how_to_store_it(tfds, monkeypatch):
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if tensorflow were not installed
  builder = FakeBuilder(tfds.core.FileFormat.TFRECORD, {}, {"train": 3})  # `tfds build`'s default format
  with pytest.raises(UserError, match=r"tfds dataset 'imdb' in /d is stored as tfrecord, which needs tensorflow to "
                                      r"read: prepare it beforehand, stored as array_record"):
    tfds_source.split_examples(builder, "imdb", "train", "/d")


def test_slices_are_read_in_chunks_and_incomplete_files_are_refused(tfds, monkeypatch):
  monkeypatch.setattr(tfds_source, "CHUNK", 3)
  rows = {"train": [{"i": i} for i in range(10)], "test": [{"i": 100 + i} for i in range(4)]}
  builder = FakeBuilder(tfds.core.FileFormat.PARQUET, rows, {"train": 10, "test": 4})
  got = [e["i"] for e in tfds_source.split_examples(builder, "d", "train[2:9]+test[-2:]", "/d")]
  assert got == [2, 3, 4, 5, 6, 7, 8, 102, 103]
  builder = FakeBuilder(tfds.core.FileFormat.PARQUET, rows, {"train": 150, "test": 4})  # rows lost in writing
  with pytest.raises(UserError, match=r"tfds dataset 'd' in /d: split 'train' holds 10 examples but its "
                                      r"dataset_info.json says 150; the files are incomplete"):
    tfds_source.split_examples(builder, "d", "train[:50%]", "/d")


def test_without_the_extra_the_error_names_it(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails, as when not installed
  c = config(tmp_path, **news_tasks())
  with pytest.raises(UserError, match=r"format 'tfds' needs tensorflow-datasets .*: pip install 'mtl_jax\[tfds\]'"):
    corpora.load_data(c, None, 64)


def test_text_pairs_from_pair_features(tfds, tokenizer, tmp_path):
  """text_pair_columns: the title is the first text, the body its pair, encoded as the tokenizer encodes pairs."""
  rows = prepare_news(tfds, tmp_path)
  c = config(tmp_path, **news_tasks(text_columns=("title",), text_pair_columns=("body",)))
  (corpus,) = corpora.group_tasks(c, list(c.tasks.keys()))
  records = corpora.read_tfds(corpus, c, "test")
  assert sorted(text for text, _, _ in records) == sorted((r["title"], r["body"]) for r in rows["test"])
  _, _, _, test = corpora.load_data(c, tokenizer, 64)
  assert sorted(map(list, test.ids)) == sorted(tokenizer.backend.encode(r["title"], r["body"]).ids for r in rows["test"])
  assert all(list(types).count(1) == len(ids) - list(ids).index(tokenizer.sep_token_id) - 1
             for ids, types in zip(test.ids, test.type_ids))
