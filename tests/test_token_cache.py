"""The token cache: what a run maps from it equals what it reads without one (tables read in chunks, corpora of
words and texts), and a warm run reads no source at all. The faults (a damaged entry, a changed source, a bad row
mid-build) are in tests/reliability/test_cache_faults.py."""

import json
import os

import numpy as np
import pytest
from runs import assert_same_data, assert_same_encoded, corpus_config, make_table, smoke

from mtl_jax import corpora, data, token_cache


def mapped(result) -> bool:
  return all(isinstance(part.ids.values, np.memmap) for part in result[1].values())


def pair_table(path, n: int) -> str:
  """make_table's rows, the later ones with a text pair (a chunk without pairs before chunks with them)."""
  make_table(path, n)
  rows = [json.loads(line) for line in open(path)]
  with open(path, "w") as f:
    for i, row in enumerate(rows):
      f.write(json.dumps({**row, **({"text_pair": f"pair of ticket {i}"} if i >= 10 else {})}) + "\n")
  return str(path)


def test_a_table_read_in_chunks_maps_back_equal(tmp_path, monkeypatch, tokenizer):
  monkeypatch.setattr(data, "CHUNK_ROWS", 7)  # several chunks, pairs first appearing in the second
  table = pair_table(tmp_path / "t.jsonl", 40)
  test = make_table(tmp_path / "test.jsonl", 9, seed=1)
  config = lambda cache: smoke(table, **{"data.cache_dir": cache, "data.test": test})
  without = corpora.load_data(config("off"), tokenizer, 64)
  cold = corpora.load_data(config(str(tmp_path / "cache")), tokenizer, 64)
  assert_same_data(cold, without)
  assert mapped(cold) and len(os.listdir(tmp_path / "cache")) == 2  # train and test table; nothing else left
  monkeypatch.setattr(corpora, "read_chunks", lambda *a: pytest.fail("a warm run read the table"))
  warm = corpora.load_data(config(str(tmp_path / "cache")), tokenizer, 64)
  assert_same_data(warm, without)
  assert without[1][("sentiment", "urgency", "topic")].type_ids is not None


def test_a_table_entry_serves_runs_of_fewer_tasks(tmp_path, tokenizer):
  table = make_table(tmp_path / "t.jsonl", 30)
  cache = str(tmp_path / "cache")
  corpora.load_data(smoke(table, **{"data.cache_dir": cache}), tokenizer, 64)
  config = lambda cache: smoke(table, **{"data.cache_dir": cache, "train.tasks": ("topic", "sentiment")})
  assert_same_data(corpora.load_data(config(cache), tokenizer, 64), corpora.load_data(config("off"), tokenizer, 64))
  assert len(os.listdir(cache)) == 1  # the same file's entry: the columns are picked after mapping it


def corpus_files(root) -> None:
  """A CoNLL corpus (NER, POS) and a CSV text corpus: a pool of words and texts, labels found in the data."""
  os.makedirs(root, exist_ok=True)
  sentences = [[("John", "NNP", "B-PER"), ("lives", "VBZ", "O"), ("in", "IN", "O"), ("Paris", "NNP", "B-LOC")],
               [("Mary", "NNP", "B-PER"), ("Smith", "NNP", "I-PER"), ("sings", "VBZ", "O")],
               [("Rome", "NNP", "B-LOC"), ("is", "VBZ", "O"), ("old", "JJ", "O")]]
  sentences = [s + [(f"n{i}", "CD", "O")] for i in range(4) for s in sentences]  # 12 distinct sentences
  with open(os.path.join(root, "ner.conll"), "w") as f:
    f.write("\n".join("\n".join(" ".join(t) for t in s) + "\n" for s in sentences))
  with open(os.path.join(root, "topic.csv"), "w") as f:
    f.write("text,label\n" + "".join(f"ticket number {i} about {t},{t}\n" for i in range(24)
                                     for t in [("billing", "login", "refund")[i % 3]]))


def corpus_config_with(root, cache: str):
  c = corpus_config(root, ner=dict(kind="tagging", scheme="IOB2", data=dict(
      format="conll", columns=dict(pos=1, ner=2), tag="ner", train="ner.conll", validation="0.25")),
      pos=dict(kind="tagging", data=dict(format="conll", columns=dict(pos=1, ner=2), tag="pos", train="ner.conll",
                                         validation="0.25")),
      topic=dict(kind="classification", data=dict(format="csv", train="topic.csv", validation="0.25",
                                                  label_column="label")))
  c.data.cache_dir = cache
  return c


def test_corpora_map_back_equal_and_a_warm_run_reads_no_file(tmp_path, monkeypatch, tokenizer):
  corpus_files(tmp_path / "data")
  cache = str(tmp_path / "cache")
  without = corpora.load_data(corpus_config_with(tmp_path / "data", "off"), tokenizer, 64)
  cold = corpora.load_data(corpus_config_with(tmp_path / "data", cache), tokenizer, 64)
  assert_same_data(cold, without)
  assert without[0].tasks[0].labels == ("B-LOC", "B-PER", "I-LOC", "I-PER", "O")  # found in the data, then cached
  monkeypatch.setattr(corpora, "read_file", lambda *a: pytest.fail("a warm run read a corpus"))
  warm = corpora.load_data(corpus_config_with(tmp_path / "data", cache), tokenizer, 64)
  assert_same_data(warm, without)
  assert mapped(warm) and len(os.listdir(cache)) == 1


def test_a_hub_dataset_is_not_cached_and_sources_are_fingerprinted(tmp_path):
  config = corpus_config(tmp_path, t=dict(kind="classification", data=dict(format="hf", dataset="org/name",
                                                                           train="train")))
  corpus = corpora.group_tasks(config, ["t"])[0]
  assert corpora.source_paths(corpus, config) is None
  (tmp_path / "a.txt").write_text("x")
  state = token_cache.sources_state([str(tmp_path / "*.txt")])
  assert state == [[str(tmp_path / "a.txt"), 1, os.stat(tmp_path / "a.txt").st_mtime_ns]]


@pytest.mark.parametrize("shares", [2, 3, 40])
def test_shares_built_apart_join_into_the_whole_table(tmp_path, monkeypatch, tokenizer, shares):
  """What each process of a multi-process run builds (its byte share of the table, as an entry), joined in order by
  process 0 (`token_cache._join`), equals the table read whole; an empty share (more processes than chunks of
  rows) joins as nothing."""
  monkeypatch.setattr(data, "CHUNK_ROWS", 5)
  table = pair_table(tmp_path / "t.jsonl", 23)
  layout = corpora.layout_from_config(smoke(table))
  whole = corpora.table_examples(table, smoke(table, **{"data.cache_dir": "off"}), layout, tokenizer, 64)
  root, key = str(tmp_path / "cache"), {"table": "t"}
  chunks = lambda share: (corpora.encode_table(t, tokenizer, 64) for t in data.read_chunks(table, layout, share))
  parts = [{**key, "share": [i, shares]} for i in range(shares)]
  for i, part in enumerate(parts):
    token_cache._get(root, part, lambda entry: entry.add("rows", chunks((i, shares))), print)
  assert token_cache._join(root, key, parts, "rows", ["ok"] * shares, print) == "ok"
  assert_same_encoded(token_cache.read_entry(os.path.join(root, token_cache.entry_key(key)))[0]["rows"], whole)
  said = ["ok"] * (shares - 2) + ["error:t.jsonl:9: bad", "error:t.jsonl:20: worse"]
  assert token_cache._join(root, key, parts, "rows", said, print) == "error:t.jsonl:9: bad"  # the first in the file
