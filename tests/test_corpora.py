"""A corpus per task: shared corpora counted once, windows that score every word, tag vocabularies, configs."""

import importlib.util
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO

from mtl_jax import corpora, kinds, schema
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import encode_words, make_batch
from mtl_jax.losses import grouped_loss
from mtl_jax.predict import Predictor


def load_config(name, arg="smoke"):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_long_sentences_are_windowed_and_every_word_scored(tokenizer):
  words = tuple(f"word{i} extraordinarily" for i in range(30))  # several sub-tokens per word
  words = tuple(w for pair in words for w in pair.split())
  tags = np.arange(len(words), dtype=np.int32)[:, None] % 5
  data = encode_words([words, ("short",)], [tags, np.array([[3]], np.int32)], np.full((2, 1), -1, np.int32),
                      np.ones((2, 1), np.float32), tokenizer, max_length=16)
  windows = np.flatnonzero(data.sentence == 0)
  assert len(windows) > 3 and all(len(data.ids[i]) <= 16 for i in range(len(data)))
  scored = np.concatenate([data.tags[i][data.starts[i], 0] for i in windows])
  np.testing.assert_array_equal(scored, tags[:, 0])  # every word once, in order
  for i in windows:  # each window: [CLS] pieces [SEP], labels only on first sub-tokens
    assert data.ids[i][0] == tokenizer.cls_token_id and data.ids[i][-1] == tokenizer.sep_token_id
    assert (data.tags[i][:, 0] >= 0).sum() == len(data.starts[i])


def conll_config(root, **extra_ner):
  c = schema.defaults()
  c.data.root = root
  spec = dict(format="conll", columns=dict(pos=1, chunk=2, ner=3), train="conll2003/eng.testa",
              validation="conll2003/eng.testb")
  c.tasks.pos = dict(kind="tagging", data=dict(spec, tag="pos"))
  c.tasks.ner = dict(kind="tagging", scheme="IOB2", data=dict(spec, tag="ner", **extra_ner))
  return c


def test_tasks_on_one_file_share_examples(shared_data, tokenizer):
  config = conll_config(shared_data)
  assert len(corpora.group_tasks(config, ["ner", "pos"])) == 1
  layout, train, validation, test = corpora.load_data(config, tokenizer, 128)
  assert list(train) == [("ner", "pos")] and test is None
  data = train[("ner", "pos")]
  assert len(np.unique(data.sentence)) == 3250  # eng.testa's sentences, once each, labelled for both tasks
  both = [(data.tags[i][data.starts[i]] >= 0).all() for i in range(len(data))]
  assert all(both)
  ner = layout.tasks[layout.names.index("ner")]
  assert ner.labels == ("B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O")


def first_tags(data, task, n=40):
  return [t for i in range(n) for t in data.tags[i][data.starts[i], task]]


def test_iob1_file_converted_to_the_task_scheme(shared_data, tokenizer):
  as_is = corpora.load_data(conll_config(shared_data), tokenizer, 128)
  converted = corpora.load_data(conll_config(shared_data, scheme="IOB1"), tokenizer, 128)
  labels = converted[0].tasks[0].labels
  raw, new = (np.array(first_tags(run[1][("ner", "pos")], 0)) for run in (as_is, converted))
  begins = [labels.index(f"B-{t}") for t in ("LOC", "MISC", "ORG", "PER")]
  assert np.isin(raw, begins).sum() < np.isin(new, begins).sum()  # IOB2 begins every span with B-


def test_unknown_tag_in_validation_is_named(shared_data, tokenizer, tmp_path):
  (tmp_path / "train.txt").write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n")
  (tmp_path / "dev.txt").write_text("Peter NNP B-NP B-PER\n\n")
  config = conll_config(shared_data)
  for task in ("pos", "ner"):
    config.tasks[task].data.train = str(tmp_path / "train.txt")
    config.tasks[task].data.validation = str(tmp_path / "dev.txt")
  with pytest.raises(UserError, match=r"dev.txt:1: word 1 'Peter': label 'B-PER' of task 'ner' does not "
                                      r"occur in the training data"):
    corpora.load_data(config, tokenizer, 128)


def test_a_span_scheme_its_tags_do_not_fit_is_named_where_a_tag_breaks_it(tokenizer, tmp_path):
  (tmp_path / "train.txt").write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nGerman JJ B-NP B-MISC\n\n")
  config = conll_config(str(tmp_path))
  del config.tasks["ner"]
  config.tasks.pos.scheme = "IOB2"  # POS tags are not spans (the chunk column would be)
  config.tasks.pos.data.update(train="train.txt", validation="train.txt")
  with pytest.raises(UserError, match=r"train.txt:4: pos tag 'JJ' is not valid in IOB2 .*config.tasks.pos.scheme"):
    corpora.load_data(config, tokenizer, 128)
  config.tasks.pos.data.tag = "chunk"
  assert corpora.load_data(config, tokenizer, 128)[0].tasks[0].labels == ("B-NP", "B-VP", "I-NP", "I-VP", "O")


def test_fraction_splits_keep_duplicate_texts_together():
  # 40 distinct texts, most repeated
  records = [(f"text {i % 40}", {"t": str(i % 3)}, f"f.txt:{i + 1}") for i in range(100)]
  train, held = corpora.split_off(records, 10, seed=0)
  assert len({r[0] for r in held}) == 10 and not {r[0] for r in train} & {r[0] for r in held}
  assert len(train) + len(held) == 100


def test_pos_chunk_smoke_trains_evaluates_tests_and_predicts(pos_chunk_run):
  _, workdir, final = pos_chunk_run  # configs/pos_chunk.py:smoke, trained once per test process (conftest.py)
  for split in ("eval", "test"):
    assert {f"{split}/pos/accuracy", f"{split}/chunk/f1", f"{split}/chunk/f1/NP", f"{split}/mean/main"} <= set(final)
  result = Predictor.load(workdir).predict(["Mr. Smith bought three new cars in New York ."])[0]
  assert set(result) == {"pos", "chunk"}
  assert result["pos"]["words"] == ["Mr", ".", "Smith", "bought", "three", "new", "cars", "in", "New", "York", "."]
  assert len(result["pos"]["tags"]) == 11 and "spans" not in result["pos"]
  for span in result["chunk"]["spans"]:
    assert span["text"] == " ".join(result["chunk"]["words"][span["start"]:span["end"]])
  empty = Predictor.load(workdir).predict(["", "  "])  # texts without words: no tags, nothing raised
  assert [r["pos"]["words"] + r["chunk"]["tags"] for r in empty] == [[], []]


def test_airline_three_tasks_one_corpus_reason_missing_for_non_negative(shared_data, tokenizer):
  config = load_config("airline", "")
  config.data.root = shared_data
  layout, train, validation, test = corpora.load_data(config, tokenizer, 128)
  assert list(train) == [("airline", "reason", "sentiment")]  # one corpus: each tweet once, labelled for all three
  total = len(train[("airline", "reason", "sentiment")]) + len(validation) + len(test)
  assert total == 14640 and 1300 < len(test) < 1600
  assert layout.tasks[layout.names.index("airline")].num_classes == 6
  labels = np.concatenate([train[("airline", "reason", "sentiment")].labels, validation.labels, test.labels])
  sentiment = layout.tasks[layout.names.index("sentiment")]
  negative = labels[:, layout.names.index("sentiment")] == sentiment.labels.index("negative")
  has_reason = labels[:, layout.names.index("reason")] >= 0
  assert negative.sum() == 9178 and np.array_equal(has_reason, negative)


def test_news_topic_ner_reads_ag_news_split_and_conll(shared_data, tokenizer):
  config = load_config("news_topic_ner", "")
  config.data.root = shared_data
  config.tasks.ner.data.train = "conll2003/eng.testa"  # the small split stands in for train here, for speed
  layout, train, validation, test = corpora.load_data(config, tokenizer, 128)
  assert set(train) == {("topic",), ("ner",)}
  assert layout.tasks[layout.names.index("topic")].labels == ("Business", "Sci/Tech", "Sports", "World")
  assert len(train[("topic",)]) == 7600 - 2 * 760
  topic = layout.names.index("topic")
  assert (validation.labels[:, topic] >= 0).sum() == 760 and (test.labels[:, topic] >= 0).sum() == 760


def test_a_csv_corpus_of_text_pairs_is_encoded_as_pairs(tmp_path, tokenizer):
  rows = [("A man plays a guitar.", "Someone makes music.", "entailment"), ("A dog runs.", "A cat sleeps.", "contra"),
          ("Kids play.", "Children are outside.", "entailment"), ("It rains.", "The sun shines.", "contra")] * 3
  (tmp_path / "nli.csv").write_text("premise,hypothesis,label\n" + "".join(f"{a},{b},{y}\n" for a, b, y in rows))
  config = load_config("pos_chunk", "")
  config.data.root = str(tmp_path)
  config.tasks = {"nli": dict(kind="classification", data=dict(
      format="csv", text_columns=("premise",), text_pair_columns=("hypothesis",), label_column="label",
      train="nli.csv", validation="0.25"))}
  config.sampling.epoch_task = ""
  schema.validate(config)
  _, train, validation, _ = corpora.load_data(config, tokenizer, 64)
  data = train[("nli",)]
  for ids, types in zip(data.ids, data.type_ids):  # [CLS] premise [SEP] hypothesis [SEP], types 0 then 1
    sep = list(ids).index(tokenizer.sep_token_id)
    assert list(types) == [0] * (sep + 1) + [1] * (len(ids) - sep - 1)
  pairs = {tuple(tokenizer.backend.encode(a, b).ids) for a, b, _ in rows}  # the tokenizer's own pair encoding
  assert {tuple(ids) for ids in data.ids} | {tuple(ids) for ids in validation.ids} == pairs


def test_multilabel_and_regression_tasks_read_their_own_jsonl_and_csv_corpora(tmp_path, tokenizer):
  (tmp_path / "mod.jsonl").write_text("".join(json.dumps({"text": f"message {i}", "flags": f}) + "\n" for i, f in
                                              enumerate([["spam"], [], ["toxic", "spam"], None] * 3)))
  (tmp_path / "sts.csv").write_text("a,b,score\n" + "".join(f"text {i},other {i},{i / 4}\n" for i in range(12)))
  config = load_config("pos_chunk", "")
  config.data.root = str(tmp_path)
  config.tasks = {
      "moderation": dict(kind="multilabel", labels=("toxic", "spam"), data=dict(
          format="jsonl", text_columns=("text",), label_column="flags", train="mod.jsonl", validation="0.25")),
      "similarity": dict(kind="regression", data=dict(
          format="csv", text_columns=("a",), text_pair_columns=("b",), label_column="score", train="sts.csv",
          validation="0.25"))}
  config.sampling.epoch_task = ""
  schema.validate(config)
  layout, train, _, _ = corpora.load_data(config, tokenizer, 64)
  assert layout.tasks[1].labels == () and layout.group_sizes == (2, 1)
  mod, sts = train[("moderation",)], train[("similarity",)]
  texts = [tokenizer.backend.decode(list(ids[1:-1])) for ids in mod.ids]
  for text, label, hot in zip(texts, mod.labels[:, 0], mod.targets[:, :2]):
    flags = [["spam"], [], ["toxic", "spam"], None][int(text.split()[1]) % 4]
    assert label == (-1 if flags is None else 0) and list(hot) == [float(f in (flags or [])) for f in ("toxic", "spam")]
  assert sts.type_ids is not None and (sts.labels[:, 1] == 0).all() and (sts.labels[:, 0] == -1).all()
  assert sorted(sts.targets[:, 2]) == sorted(set(sts.targets[:, 2])) and set(sts.targets[:, 2]) <= {i / 4 for i in range(12)}
  # beside a tagger whose corpus alone has validation data, the validation pool still carries every task's targets
  (tmp_path / "pos.conll").write_text("".join(f"w{i} N\nran V\n\n" for i in range(8)))
  config.tasks.pos = dict(kind="tagging", data=dict(format="conll", columns=dict(pos=1), tag="pos",
                                                    train="pos.conll", validation="0.25"))
  for task in ("moderation", "similarity"):
    del config.tasks[task].data["validation"]
  layout, _, validation, _ = corpora.load_data(config, tokenizer, 64)
  batch = make_batch(validation, np.arange(len(validation)), 8, (16,), 0)
  logits = {k.name: jnp.zeros((8, 16, layout.total(k.name)) if k.reads_words else (8, layout.total(k.name)))
            for k in kinds.of_layout(layout)}
  sums, counts = grouped_loss(logits, batch, layout)  # no scored rows for the text tasks here, and no KeyError
  count = dict(zip(layout.names, counts.tolist()))
  assert batch["targets"].shape == (8, 3) and count["moderation"] == count["similarity"] == 0 < count["pos"]
  (tmp_path / "sts.csv").write_text("a,b,score\nx,y,high\n" + "".join(f"t{i},o{i},{i}\n" for i in range(5)))
  with pytest.raises(UserError, match=r"sts.csv row 1 \(line 2\): field 'score' \(task 'similarity'\): expected a finite"):
    corpora.load_data(config, tokenizer, 64)


def test_a_classification_corpus_takes_integer_labels_and_names_other_values(tmp_path, tokenizer):
  rows = [{"text": f"t {i}", "y": y} for i, y in enumerate(["pos", 1.0, 1, "pos", None, "neg"] * 2)]
  (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  config = load_config("pos_chunk", "")
  config.data.root, config.sampling.epoch_task = str(tmp_path), ""
  config.tasks = {"c": dict(kind="classification", data=dict(format="jsonl", text_columns=("text",),
                                                             label_column="y", train="c.jsonl", validation="0.25"))}
  layout, _, _, _ = corpora.load_data(config, tokenizer, 64)
  assert layout.tasks[0].labels == ("1", "neg", "pos")  # 1.0 and 1 are the same class
  (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + [{"text": "x", "y": 0.5}]))
  with pytest.raises(UserError, match=r"c.jsonl:13: field 'y': expected a class name or an integer for a "
                                      r"classification task, found 0.5"):
    corpora.load_data(config, tokenizer, 64)
