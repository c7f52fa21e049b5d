"""Token cache faults: a damaged entry is reported and rebuilt, a source changed between runs is read again, and a
build that fails half way (a bad row in a later chunk) leaves nothing behind."""

import glob
import json
import os

import pytest
from runs import assert_same_data, make_table, smoke

from mtl_jax import corpora, data
from mtl_jax.errors import UserError


def entry_files(cache: str, pattern: str) -> list[str]:
  return glob.glob(os.path.join(cache, "*", pattern))


def truncate(path: str) -> None:
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 4)


def flip_byte(path: str) -> None:
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0xFF]))


def garble(path: str) -> None:
  with open(path, "w") as f:
    f.write('{"format": 1, "datasets": ')


@pytest.mark.parametrize("damage,pattern", [(truncate, "rows.ids.bin"), (flip_byte, "rows.labels.bin"),
                                            (garble, "meta.json")])
def test_a_damaged_entry_is_reported_and_rebuilt(tmp_path, capsys, tokenizer, damage, pattern):
  table = make_table(tmp_path / "t.jsonl", 30)
  cache = str(tmp_path / "cache")
  config = lambda cache: smoke(table, **{"data.cache_dir": cache})
  without = corpora.load_data(config("off"), tokenizer, 64)
  corpora.load_data(config(cache), tokenizer, 64)
  [path] = entry_files(cache, pattern)
  damage(path)
  capsys.readouterr()
  assert_same_data(corpora.load_data(config(cache), tokenizer, 64), without)
  out = capsys.readouterr().out
  assert f"token cache: {os.path.dirname(path)} is damaged" in out and "rebuilding it" in out, out
  assert_same_data(corpora.load_data(config(cache), tokenizer, 64), without)  # the rebuilt entry is sound
  assert "damaged" not in capsys.readouterr().out


def test_a_source_changed_between_runs_is_read_again(tmp_path, tokenizer):
  table, cache = str(tmp_path / "t.jsonl"), str(tmp_path / "cache")
  make_table(table, 30, seed=0)
  config = lambda cache: smoke(table, **{"data.cache_dir": cache})
  first = corpora.load_data(config(cache), tokenizer, 64)
  rows = [json.loads(line) for line in open(table)]
  with open(table, "w") as f:  # the same texts, other labels: only the file's fingerprint tells
    f.writelines(json.dumps({**r, "labels": [(r["labels"][0] + 1) % 3, *r["labels"][1:]]}) + "\n" for r in rows)
  changed = corpora.load_data(config(cache), tokenizer, 64)
  assert_same_data(changed, corpora.load_data(config("off"), tokenizer, 64))
  assert (changed[2].labels[:, 0] != first[2].labels[:, 0]).all()
  assert len(entry_files(cache, "meta.json")) == 2


def test_a_bad_row_in_a_later_chunk_leaves_no_entry(tmp_path, monkeypatch, tokenizer):
  monkeypatch.setattr(data, "CHUNK_ROWS", 8)
  table, cache = make_table(tmp_path / "t.jsonl", 30), str(tmp_path / "cache")
  with open(table, "a") as f:
    f.write(json.dumps({"text": "late", "labels": [0, 7, 0]}) + "\n")  # line 31, in the fourth chunk
  with pytest.raises(UserError, match=r"t\.jsonl:31: field 'labels'\[1\]"):
    corpora.load_data(smoke(table, **{"data.cache_dir": cache}), tokenizer, 64)
  assert os.listdir(cache) == []  # no entry, no temporary folder
