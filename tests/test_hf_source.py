"""The `hf` data source: real Hugging Face datasets written in tmp_path (save_to_disk folders, Parquet read by
load_dataset; ClassLabel and Sequence(ClassLabel) features) read through `corpora.load_data` and `data.read_table`,
each compared with the same rows written as CSV / JSONL / CoNLL and read by the existing readers: the same encoded
examples and labels. Then a CoNLL-2003 sample converted, a training run through the CLI, and the errors.

Needs `datasets` (the `test` extra installs it): skipped without it on a developer machine, failed in CI. No hub:
`datasets` is told it is offline and its cache is the test's.
"""

import csv
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from runs import REPO, corpus_config, make_table

from mtl_jax import corpora, evaluate, hf_source, schema
from mtl_jax.data import read_table
from mtl_jax.errors import UserError

TOPICS = ("World", "Sports", "Business")
NER = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


@pytest.fixture
def hf(tmp_path, monkeypatch):
  """The datasets module, offline, caching under tmp_path; missing: a failure in CI (the test extra has it), else a
  skip."""
  try:
    import datasets
  except ImportError as e:
    if os.environ.get("CI"):
      pytest.fail(f"datasets is not importable in CI ({e}): install '.[test,tfds]'", pytrace=False)
    pytest.skip(f"datasets not installed ({e}): pip install 'mtl_jax[hf]'")
  monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
  monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
  datasets.disable_progress_bars()
  return datasets


def config(root, **tasks) -> ml_collections.ConfigDict:
  c = corpus_config(root, **tasks)
  schema.validate(c)
  return c


def assert_same_data(a, b) -> None:
  """Two load_data results: the same layout and, split by split, the same encoded examples and labels."""
  (layout_a, *splits_a), (layout_b, *splits_b) = a, b
  assert layout_a == layout_b
  for x, y in zip([*splits_a[0].values(), *splits_a[1:]], [*splits_b[0].values(), *splits_b[1:]], strict=True):
    assert (x is None) == (y is None)
    if x is None:
      continue
    assert len(x) > 0 and len(x) == len(y)
    for field in ("ids", "tags", "starts", "type_ids"):
      left, right = getattr(x, field), getattr(y, field)
      assert (left is None) == (right is None), field
      for u, v in zip(left or (), right or (), strict=True):
        np.testing.assert_array_equal(u, v)
    for field in ("labels", "weights", "sentence", "targets"):
      np.testing.assert_array_equal(getattr(x, field), getattr(y, field))


def news_rows(n: int, offset: int = 0) -> list[dict]:
  """Texts with a topic and an urgency ("" for every third: unlabelled)."""
  return [{"title": f"headline {i}", "body": f"story number {i} about {TOPICS[i % 3].lower()}", "topic": i % 3,
           "urgency": "" if i % 3 == 2 else ("no", "yes")[i % 2]} for i in range(offset, offset + n)]


def write_csv(path, rows: list[dict]) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def news_tasks(**spec) -> dict:
  return dict(topic=dict(kind="classification", data=dict(spec, label_column="topic")),
              urgency=dict(kind="classification", data=dict(spec, label_column="urgency")))


def test_a_saved_dataset_dict_with_class_labels_reads_as_its_csv(hf, tokenizer, tmp_path):
  features = hf.Features({"title": hf.Value("string"), "body": hf.Value("string"),
                          "topic": hf.ClassLabel(names=TOPICS), "urgency": hf.Value("string")})
  rows = {"train": news_rows(30), "test": news_rows(8, offset=100)}
  hf.DatasetDict({s: hf.Dataset.from_list(r, features=features) for s, r in rows.items()}).save_to_disk(
      str(tmp_path / "news"))
  for split, split_rows in rows.items():  # the same rows with the topics' names, as a CSV corpus holds them
    write_csv(tmp_path / f"{split}.csv", [dict(r, topic=TOPICS[r["topic"]]) for r in split_rows])
  common = dict(text_columns=("title", "body"), validation="0.2")
  saved = config(tmp_path, **news_tasks(format="hf", dataset="news", train="train", test="test", **common))
  as_csv = config(tmp_path, **news_tasks(format="csv", train="train.csv", test="test.csv", **common))
  got = corpora.load_data(saved, tokenizer, 64)
  assert_same_data(got, corpora.load_data(as_csv, tokenizer, 64))
  layout, train, validation, test = got
  assert list(train) == [("topic", "urgency")] and (len(train[("topic", "urgency")]), len(validation)) == (24, 6)
  assert layout.tasks[0].labels == ("Business", "Sports", "World") and layout.tasks[1].labels == ("no", "yes")
  assert (test.labels[:, 1] == -1).sum() == 3  # "" is no label
  assert evaluate.split_sources(saved, "validation", ("topic",)) == {
      "topic": "0.2 of Hugging Face `news` split `train` (seeded split, seed 0)"}
  assert evaluate.split_sources(saved, "test", ("topic",)) == {"topic": "Hugging Face `news` split `test`"}
  with pytest.raises(UserError, match=r"^config.tasks.topic.data.dataset: a Hugging Face dataset is required"):
    config(tmp_path, **news_tasks(format="hf", train="train"))


def test_text_pairs_multilabel_and_regression_from_parquet_files_read_as_their_jsonl(hf, tokenizer, tmp_path):
  """load_dataset("parquet", data_files=...): a List(ClassLabel) column (names in another order than the task's
  labels), a float column with nulls, text pairs."""
  features = hf.Features({"premise": hf.Value("string"), "hypothesis": hf.Value("string"),
                          "flags": hf.List(hf.ClassLabel(names=("spam", "toxic"))), "score": hf.Value("float64")})
  flags = [[0], [1, 0], [], None]
  rows = [{"premise": f"message {i}", "hypothesis": f"reply {i % 5}", "flags": flags[i % 4],
           "score": i / 4 if i % 5 else None} for i in range(16)]
  for name, part in (("train", rows[:12]), ("dev", rows[12:])):
    hf.Dataset.from_list(part, features=features).to_parquet(str(tmp_path / f"{name}.parquet"))
    (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(dict(r, flags=None if r["flags"] is None else [
        ("spam", "toxic")[k] for k in r["flags"]])) + "\n" for r in part))
  tasks = lambda **spec: dict(
      moderation=dict(kind="multilabel", labels=("toxic", "spam"), data=dict(spec, label_column="flags")),
      similarity=dict(kind="regression", data=dict(spec, label_column="score")))
  common = dict(text_columns=("premise",), text_pair_columns=("hypothesis",), test="")
  parquet = config(tmp_path, **tasks(format="hf", dataset="parquet", data_files=dict(train="train.parquet",
                                                                                      dev="dev.parquet"),
                                     train="train", validation="dev", **common))
  jsonl = config(tmp_path, **tasks(format="jsonl", train="train.jsonl", validation="dev.jsonl", **common))
  got = corpora.load_data(parquet, tokenizer, 64)
  assert_same_data(got, corpora.load_data(jsonl, tokenizer, 64))
  layout, train, _, _ = got
  data = train[("moderation", "similarity")]
  assert data.type_ids is not None and list(data.labels[:4, 0]) == [0, 0, 0, -1] and data.labels[0, 1] == -1
  assert data.targets[:4, :2].tolist() == [[0, 1], [1, 1], [0, 0], [0, 0]]  # spam = id 0 in the file, 1 here


def sentence_rows(n: int) -> list[dict]:
  """Sentences of 0-4 words with NER tags (ClassLabel ids) and POS tags (strings); every fifth is empty."""
  words, ner, pos = ("Peter", "lives", "in", "Berlin"), (1, 0, 0, 3), ("NNP", "VBZ", "IN", "NNP")
  return [{"tokens": words[:i % 5], "ner": ner[:i % 5], "pos": pos[:i % 5]} for i in range(n)]


def write_conll(path, rows: list[dict]) -> None:
  """The non-empty sentences as CoNLL: word POS NER per line."""
  path.write_text("".join("".join(f"{w} {p} {NER[t]}\n" for w, p, t in zip(r["tokens"], r["pos"], r["ner"])) + "\n"
                          for r in rows if r["tokens"]))


def test_a_tagging_dataset_of_sequences_reads_as_its_conll_file(hf, tokenizer, tmp_path):
  """A single saved Dataset (its split: "train"), sliced into train and validation; Sequence(ClassLabel) and
  Sequence(string) tags of two tasks; empty sentences dropped."""
  features = hf.Features({"tokens": hf.Sequence(hf.Value("string")), "ner": hf.Sequence(hf.ClassLabel(names=NER)),
                          "pos": hf.Sequence(hf.Value("string"))})
  rows = sentence_rows(25)
  hf.Dataset.from_list(rows, features=features).save_to_disk(str(tmp_path / "tagged"))
  write_conll(tmp_path / "train.conll", rows[:20])
  write_conll(tmp_path / "dev.conll", rows[20:])
  tasks = lambda **spec: dict(ner=dict(kind="tagging", scheme="IOB2", data=dict(spec, tag="ner")),
                              pos=dict(kind="tagging", data=dict(spec, tag="pos")))
  saved = config(tmp_path, **tasks(format="hf", dataset="tagged", words="tokens", train="train[:20]",
                                   validation="train[20:]"))
  conll = config(tmp_path, **tasks(format="conll", columns=dict(pos=1, ner=2), train="train.conll",
                                   validation="dev.conll"))
  got = corpora.load_data(saved, tokenizer, 64)
  assert_same_data(got, corpora.load_data(conll, tokenizer, 64))
  layout, train, validation, _ = got
  assert len(np.unique(train[("ner", "pos")].sentence)) == 16 and len(validation) == 4
  assert layout.tasks[0].labels == ("B-LOC", "B-PER", "I-LOC", "I-PER", "O")


def conll_sample(path: str, count: int) -> tuple[list[dict], int]:
  """The first `count` sentences of a CoNLL-2003 file split by hand (word POS chunk NER), and the number of lines
  they take."""
  sentences, block = [], []
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      fields = line.split()
      if fields and fields[0] != "-DOCSTART-":
        block.append(fields)
      elif block:
        sentences.append({"tokens": [b[0] for b in block], "pos": [b[1] for b in block],
                          "ner": [b[3] for b in block]})
        block = []
        if len(sentences) == count:
          return sentences, line_no
  raise AssertionError(f"{path} has fewer than {count} sentences")


def test_conll2003_sentences_converted_to_a_saved_dataset_read_as_the_conll_reader_reads_them(hf, shared_data,
                                                                                             tokenizer, tmp_path):
  sentences, lines = conll_sample(os.path.join(shared_data, "conll2003", "eng.train"), 200)
  with open(os.path.join(shared_data, "conll2003", "eng.train"), encoding="utf-8") as f:
    (tmp_path / "sample.conll").write_text("".join(next(f) for _ in range(lines)))
  names = sorted({t for s in sentences for t in s["ner"]})
  features = hf.Features({"tokens": hf.Sequence(hf.Value("string")), "pos": hf.Sequence(hf.Value("string")),
                          "ner": hf.Sequence(hf.ClassLabel(names=names))})
  hf.Dataset.from_list([dict(s, ner=[names.index(t) for t in s["ner"]]) for s in sentences],
                       features=features).save_to_disk(str(tmp_path / "conll_hf"))
  tasks = lambda **spec: dict(ner=dict(kind="tagging", scheme="IOB2", data=dict(spec, tag="ner", scheme="IOB1")),
                              pos=dict(kind="tagging", data=dict(spec, tag="pos")))
  saved = config(tmp_path, **tasks(format="hf", dataset="conll_hf", words="tokens", train="train", validation="0.1"))
  conll = config(tmp_path, **tasks(format="conll", columns=dict(pos=1, chunk=2, ner=3), train="sample.conll",
                                   validation="0.1"))
  got = corpora.load_data(saved, tokenizer, 128)
  assert_same_data(got, corpora.load_data(conll, tokenizer, 128))
  layout, train, validation, _ = got
  assert len(np.unique(train[("ner", "pos")].sentence)) + len(np.unique(validation.sentence)) == 200
  assert "B-ORG" in layout.tasks[0].labels  # IOB1 read, IOB2 trained


def support_dataset(hf, jsonl: str):
  """The rows of a three-task JSONL table (runs.make_table: label ids, null urgency) as a Dataset with a column per
  task: sentiment a ClassLabel named in another order than the task's labels, urgency names, topic ids."""
  sentiment = ("positive", "negative", "neutral")
  rows = [json.loads(line) for line in open(jsonl)]
  features = hf.Features({"text": hf.Value("string"), "sentiment": hf.ClassLabel(names=sentiment),
                          "urgency": hf.Value("string"), "topic": hf.Value("int64")})
  names = {"sentiment": ("negative", "neutral", "positive"), "urgency": ("low", "high")}
  return hf.Dataset.from_list([{
      "text": r["text"], "sentiment": sentiment.index(names["sentiment"][r["labels"][0]]),
      "urgency": None if r["labels"][1] is None else names["urgency"][r["labels"][1]], "topic": r["labels"][2]}
      for r in rows], features=features)


def test_a_saved_dataset_as_the_table_reads_as_its_jsonl_and_names_bad_rows(hf, layout, tmp_path):
  jsonl = make_table(tmp_path / "t.jsonl", 40)
  support_dataset(hf, jsonl).save_to_disk(str(tmp_path / "table"))
  saved, expected = read_table(str(tmp_path / "table"), layout), read_table(jsonl, layout)
  assert saved.texts == expected.texts and saved.pairs is None
  np.testing.assert_array_equal(saved.labels, expected.labels)
  np.testing.assert_array_equal(saved.weights, expected.weights)
  assert (saved.labels[:, 1] == -1).sum() == 4  # null urgency: no label

  hf.DatasetDict(train=support_dataset(hf, jsonl)).save_to_disk(str(tmp_path / "both"))
  with pytest.raises(UserError, match=r"both: a DatasetDict with splits \['train'\]; name one split's folder as the "
                                      r"table, e.g. .*both/train$"):
    read_table(str(tmp_path / "both"), layout)
  assert len(read_table(str(tmp_path / "both" / "train"), layout)) == 40
  bad = support_dataset(hf, jsonl).map(lambda r, i: {"topic": 9 if i == 17 else r["topic"]}, with_indices=True)
  bad.save_to_disk(str(tmp_path / "bad"))
  with pytest.raises(UserError, match=r"^\S+/bad row 17: field 'topic' \(task 'topic'\): expected a class id in "
                                      r"0..3, .* found 9$"):
    read_table(str(tmp_path / "bad"), layout)
  support_dataset(hf, jsonl).select_columns(["text", "sentiment"]).save_to_disk(str(tmp_path / "two_columns"))
  with pytest.raises(UserError, match=r"two_columns: expected columns 'text' and 'labels' \(or one column per task: "
                                      r"\['sentiment', 'urgency', 'topic'\]\); found \['text', 'sentiment'\]$"):
    read_table(str(tmp_path / "two_columns"), layout)


def test_trains_through_the_cli_on_a_saved_dataset_table(hf, tmp_path):
  """The smoke run of runs.smoke (same steps: its compiled steps are in the session's cache) on split folders."""
  splits = hf.DatasetDict(train=support_dataset(hf, make_table(tmp_path / "t.jsonl", 48)),
                          validation=support_dataset(hf, make_table(tmp_path / "v.jsonl", 16, seed=1)))
  splits.save_to_disk(str(tmp_path / "support"))
  subprocess.run([sys.executable, "-m", "mtl_jax.main", "--config=configs/three_task.py:smoke",
                  f"--config.data.train={tmp_path / 'support' / 'train'}",
                  f"--config.data.validation={tmp_path / 'support' / 'validation'}", "--config.train.steps=8",
                  "--config.train.eval_every=4", "--config.train.log_every=2", f"--workdir={tmp_path / 'run'}"],
                 cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, check=True, capture_output=True)
  logged = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
  assert any("eval/topic/accuracy" in r for r in logged) and any("train/urgency/loss" in r for r in logged)


def test_missing_columns_bad_labels_and_splits_are_named_in_one_line(hf, tokenizer, tmp_path):
  features = hf.Features({"title": hf.Value("string"), "body": hf.Value("string"),
                          "topic": hf.ClassLabel(names=TOPICS), "urgency": hf.Value("string")})
  rows = news_rows(20)
  hf.DatasetDict(train=hf.Dataset.from_list(rows, features=features),
                 dev=hf.Dataset.from_list(news_rows(4, offset=20) + [dict(rows[0], urgency="maybe")],
                                          features=features)).save_to_disk(str(tmp_path / "news"))
  where = tmp_path / "news"
  cases = [
      (dict(text_columns=("headline",)),
       f"hf:{where}: no column 'headline'; the dataset has ['title', 'body', 'topic', 'urgency']"),
      (dict(text_columns=("title", "topic")),
       f"hf:{where}: column 'topic' is ClassLabel(names=['World', 'Sports', 'Business']), expected strings"),
      (dict(validation="validation"),
       f"hf:{where}: cannot read split 'validation' (splits: ['train', 'dev']): "),  # then datasets' own words
      (dict(), f"{where} split dev row 4: field 'urgency': label 'maybe' of task 'urgency' does not occur in the "
               "training data (known: ['no', 'yes'])"),
  ]
  for spec, message in cases:
    c = config(tmp_path, **news_tasks(**dict(dict(format="hf", dataset="news", text_columns=("title", "body"),
                                                  train="train", validation="dev"), **spec)))
    with pytest.raises(UserError) as error:
      corpora.load_data(c, tokenizer, 64)
    assert str(error.value) == message or message.endswith(": ") and str(error.value).startswith(message)

  flags = hf.Dataset.from_dict({"text": ["a", "b", "c"], "flags": [["spam"], ["spam", "rude"], []]})
  flags.to_json(str(tmp_path / "flags.jsonl"))
  c = config(tmp_path, moderation=dict(kind="multilabel", labels=("toxic", "spam"), data=dict(
      format="hf", dataset="json", data_files="flags.jsonl", label_column="flags", train="train", validation="1")))
  with pytest.raises(UserError, match=r"^json \(data_files 'flags.jsonl'\) split train row 1: field 'flags' \(task "
                                      r"'moderation'\): expected a list of label names of \['toxic', 'spam'\]"):
    corpora.load_data(c, tokenizer, 64)


def test_a_hub_name_not_loaded_a_saved_folder_with_data_files_and_a_missing_extra_are_one_line_errors(hf, monkeypatch, tmp_path):
  def offline(path, name=None, data_files=None):  # what load_dataset raises without a hub, never reached here
    raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)\nmore detail")
  monkeypatch.setattr(hf, "load_dataset", offline)
  with pytest.raises(UserError) as error:
    hf_source.open_source(dict(dataset="someone/news", name="en"), str(tmp_path))
  assert str(error.value) == (f"hf:someone/news en: cannot load the dataset (no folder {tmp_path}/someone/news; so "
                              "it was looked up as a hub name): ConnectionError: Couldn't reach 'someone/news' on "
                              "the Hub (LocalEntryNotFoundError)")
  (tmp_path / "saved").mkdir()
  (tmp_path / "saved" / "dataset_dict.json").write_text('{"splits": ["train"]}')
  with pytest.raises(UserError, match=r"saved: a folder save_to_disk wrote, which load_from_disk reads whole; name and "
                                      r"data_files are load_dataset's \(leave them empty\)$"):
    hf_source.open_source(dict(dataset="saved", data_files="x.parquet"), str(tmp_path))
  monkeypatch.setitem(sys.modules, "datasets", None)  # import fails, as when not installed
  with pytest.raises(UserError, match=r"^format 'hf' needs the datasets library .*: pip install 'mtl_jax\[hf\]'$"):
    hf_source.open_source(dict(dataset="parquet", data_files="x.parquet"), str(tmp_path))


def test_multilabel_ids_in_an_int_list_column_are_ids(hf, tokenizer, tmp_path):
  """A List(int64) column (no ClassLabel) holds label ids: they reach the multilabel task as ids, not as digit
  strings that no label name matches."""
  rows = [{"text": f"message {i}", "flags": [[0], [1, 0], []][i % 3]} for i in range(9)]
  hf.Dataset.from_list(rows).save_to_disk(str(tmp_path / "mod"))
  c = config(tmp_path, moderation=dict(kind="multilabel", labels=("toxic", "spam"), data=dict(
      format="hf", dataset="mod", text_columns=("text",), label_column="flags", train="train", validation="0.34")))
  _, train, validation, _ = corpora.load_data(c, tokenizer, 64)
  got = sorted(map(tuple, np.concatenate([train[("moderation",)].targets, validation.targets]).tolist()))
  assert got == sorted(tuple(float(k in r["flags"]) for k in range(2)) for r in rows)
