"""Buckets, padding, packing, and windows of long sentences; training on token-budget batches."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from runs import assert_same_run, crash_in_step, read_history, smoke, trained_tokenizer

from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import (
  Encoded,
  bucket_length,
  check_token_types,
  eval_batches,
  eval_rows,
  make_batch,
  make_packed_batch,
  tokenize_pairs,
  word_pieces,
)
from mtl_jax.tokenizer import load_tokenizer
from mtl_jax.train import train_and_evaluate


def test_bucket_length():
  assert bucket_length(5, (32, 64, 128)) == 32
  assert bucket_length(33, (128, 32, 64)) == 64
  assert bucket_length(500, (32, 64, 128)) == 128


def test_make_batch_pads_rows_and_tokens():
  data = Encoded([np.array([101, 5, 102]), np.array([101, 6, 7, 8, 102])], np.array([[1, -1], [0, 2]], np.int32),
                 np.array([[1, 1], [2, 2]], np.float32), 0)
  batch = make_batch(data, np.array([1, 0]), batch_size=4, buckets=(4, 8), pad_id=0)
  assert batch["input_ids"].shape == (4, 8)
  np.testing.assert_array_equal(batch["attention_mask"].sum(1), [5, 3, 0, 0])
  np.testing.assert_array_equal(batch["labels"], [[0, 2], [1, -1], [-1, -1], [-1, -1]])
  np.testing.assert_array_equal(batch["weights"][:, 0], [2, 1, 0, 0])


def test_a_process_builds_its_rows_of_the_global_batch_at_the_global_length():
  data = Encoded([np.arange(n) for n in (3, 9, 2, 4)], np.arange(8, dtype=np.int32).reshape(4, 2),
                 np.ones((4, 2), np.float32), 0)
  whole = make_batch(data, np.array([2, 0, 3]), batch_size=4, buckets=(4, 16), pad_id=0)  # longest row elsewhere
  for rows in (slice(0, 2), slice(2, 4)):
    part = make_batch(data, np.array([2, 0, 3]), batch_size=4, buckets=(4, 16), pad_id=0, rows=rows)
    for key in whole:
      np.testing.assert_array_equal(part[key], whole[key][rows])
  longest = make_batch(data, np.array([1, 2]), batch_size=2, buckets=(4, 16), pad_id=0, rows=slice(1, 2))
  assert longest["input_ids"].shape == (1, 16)  # the bucket of row 1's 9 tokens, though this process holds row 2


def test_make_batch_pads_to_a_given_length():
  data = Encoded([np.arange(1, n + 1) for n in (3, 9, 2)], np.zeros((3, 1), np.int32), np.ones((3, 1), np.float32), 0)
  batch = make_batch(data, np.array([0, 2]), batch_size=4, buckets=(4, 16), pad_id=0, length=12)
  assert batch["input_ids"].shape == (4, 12)  # a token-budget batch's bucket, not the smallest that fits (4)
  np.testing.assert_array_equal(batch["attention_mask"].sum(1), [3, 2, 0, 0])
  part = make_batch(data, np.array([0, 2]), batch_size=4, buckets=(4, 16), pad_id=0, rows=slice(2, 4), length=12)
  assert part["input_ids"].shape == (2, 12) and not part["attention_mask"].any()


def test_a_packed_batch_holds_each_text_whole_in_its_row_and_slot():
  ids = [np.arange(100, 100 + n) for n in (3, 5, 2, 4, 6)]
  tags = [np.stack([np.arange(n), -np.arange(n)], 1) for n in (3, 5, 2, 4, 6)]
  data = Encoded(ids, np.arange(10, dtype=np.int32).reshape(5, 2), np.arange(1, 11, dtype=np.float32).reshape(5, 2),
                 None, tags=tags, targets=np.arange(15, dtype=np.float32).reshape(5, 3),
                 type_ids=[np.full(n, i % 2) for i, n in enumerate((3, 5, 2, 4, 6))])
  idx, places = np.array([4, 2, 1, 0]), np.array([0, 0, 2, 2])  # row 1 empty; row 2: texts 1 then 0
  whole = make_packed_batch(data, idx, places, batch_size=3, length=8, slots=3, pad_id=0)
  assert whole["input_ids"].shape == (3, 8) and whole["labels"].shape == (3, 3, 2) and whole["tags"].shape == (3, 8, 2)
  for r, texts in ((0, [4, 2]), (1, []), (2, [1, 0])):  # unpack each row by its mask, compare with the examples
    mask = whole["attention_mask"][r]
    assert mask.tolist() == [s + 1 for s, i in enumerate(texts) for _ in ids[i]] + [0] * (8 - sum(len(ids[i])
                                                                                                  for i in texts))
    for s in range(3):
      at = mask == s + 1
      if s < len(texts):
        i = texts[s]
        for key, field in (("input_ids", data.ids), ("tags", data.tags), ("token_type_ids", data.type_ids)):
          np.testing.assert_array_equal(whole[key][r][at], field[i])
        for key, field in (("labels", data.labels), ("weights", data.weights), ("targets", data.targets)):
          np.testing.assert_array_equal(whole[key][r, s], field[i])
      else:  # an empty slot: no tokens, no labels, weight 0
        assert not at.any() and (whole["labels"][r, s] == -1).all() and not whole["weights"][r, s].any()
    assert (whole["input_ids"][r][mask == 0] == 0).all() and (whole["tags"][r][mask == 0] == -1).all()
  for rows in (slice(0, 1), slice(1, 3)):  # a process's share: its rows of the whole batch
    part = make_packed_batch(data, idx, places, batch_size=3, length=8, slots=3, pad_id=0, rows=rows)
    for key in whole:
      np.testing.assert_array_equal(part[key], whole[key][rows])
  with pytest.raises(ValueError, match="does not fit row 0"):
    make_packed_batch(data, np.array([4, 1]), np.array([0, 0]), batch_size=1, length=8, slots=3, pad_id=0)


@given(st.lists(st.integers(1, 32), max_size=60), st.integers(1, 4), st.sampled_from([1, 2, 4]))
def test_eval_batches_pack_every_example_once_and_say_where_it_is(lengths, rows, multiple):
  lengths, rows = np.array(lengths, np.int64), rows * multiple
  data = Encoded([np.arange(1, n + 1) for n in lengths], np.zeros((len(lengths), 1), np.int32),
                 np.ones((len(lengths), 1), np.float32), 0)
  batches = eval_batches(lengths, rows, 32, multiple)
  np.testing.assert_array_equal(np.sort(np.concatenate([b.idx for b in batches] or [[]])), np.arange(len(lengths)))
  for n, b in enumerate(batches):
    used = int(b.places.max()) + 1
    assert b.rows % multiple == 0 and used <= b.rows <= rows
    if n < len(batches) - 1:
      assert used == b.rows == rows  # full batches of `rows` rows
    else:  # the last: the fewest rows of multiple x a power of two
      assert b.rows == multiple or b.rows // 2 < used
    batch = b.build(data, pad_id=0)  # raises if a row holds more than 32 tokens or 4 texts
    text, row, first = b.positions(data)
    for i, t, r, a in zip(b.idx, text, row, first):
      slot = t - r * 4  # slots_of(32) texts a row
      assert (batch["attention_mask"][r] == slot + 1).sum() == lengths[i]
      np.testing.assert_array_equal(batch["input_ids"][r, a:a + lengths[i]], data.ids[i])
  # first-fit decreasing: a row that turned a text away was more than half full or held its 4 texts
  filled = [(lengths[b.idx[b.places == r]].sum(), (b.places == r).sum()) for b in batches for r in np.unique(b.places)]
  assert sum(not (tokens > 16 or texts == 4) for tokens, texts in filled) <= 1


def test_eval_rows_hold_the_tokens_of_a_batch_at_the_shortest_bucket():
  assert eval_rows(128, (32, 64, 128)) == 32
  assert eval_rows(128, (32, 64, 128), multiple=8) == 32
  assert eval_rows(8, (16, 128), multiple=4) == 4  # at least one row per batch shard
  assert eval_rows(64, (48, 128), multiple=3) == 24


def test_token_budget_training_compiles_once_per_bucket_and_resumes_exactly(table, tmp_path, monkeypatch):
  """The smoke table's texts have 12 to 16 tokens: with buckets (14, 16) and 256 tokens a batch, batches are 18 x 14
  or 16 x 16 (an epoch's leftover: fewer rows, padded to 16): one compile per shape. A crash, then the same command,
  ends as the uninterrupted run (the batches are a function of the step, across epochs of different lengths)."""
  overrides = {"data.length_buckets": (14, 16), "data.tokens_per_batch": 256, "data.packing": False, "train.steps": 6,
               "train.eval_every": 3, "train.log_every": 3}
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  final = train_and_evaluate(smoke(table, **overrides), full)
  events = [e for e in read_history(full) if "train/loss" in e]
  assert [e["step"] for e in events] == [3, 6]
  assert [e["train/compiles"] for e in events] == [2, 2]
  assert all(0.6 < e["train/real_token_fraction"] <= 1 for e in events)  # fixed rows padded to 32: ~0.42
  crash_in_step(5, smoke(table, **overrides), split, monkeypatch)  # after the step-3 checkpoint
  assert train_and_evaluate(smoke(table, **overrides), split) == final
  assert_same_run(split, full)


TEXTS = ["Paris is the capital of France .", "The U.S. open starts in New York on Monday 's night"] * 20
PAIRS = {"byte-level BPE": "<s> $A </s> </s> $B </s>", "SentencePiece": "<s> $A </s> $B:1 </s>:1"}  # RoBERTa, DeBERTa


@pytest.mark.parametrize("kind", ["byte-level BPE", "SentencePiece", "WordPiece"])
def test_words_get_the_sub_tokens_they_have_inside_a_sentence(kind, tokenizer, tmp_path):
  """Tagged words are tokenized one by one; each must get the pieces it has in the running text (after a space:
  `ĠParis`, not `Paris`, for byte-level BPE; `▁Paris` for SentencePiece), as the tokenizer itself splits the
  sentence."""
  tok = tokenizer if kind == "WordPiece" else load_tokenizer(trained_tokenizer(kind, tmp_path, TEXTS))
  words = ["Paris", "is", "in", "the", "U.S.", "'s", "Monday", "--", "1.", "Paris"]
  pieces = word_pieces(sorted(set(words)), tok)
  sentence = tok(" " + " ".join(words), add_special_tokens=False)["input_ids"]
  assert [i for w in words for i in pieces[w]] == sentence
  if kind != "WordPiece":
    assert tok.backend.id_to_token(pieces["Paris"][0]).startswith("Ġ" if kind == "byte-level BPE" else "▁")


@pytest.mark.parametrize("kind", ["byte-level BPE", "SentencePiece", "WordPiece"])
def test_text_pairs_are_laid_out_and_cut_as_the_tokenizer_does(kind, tokenizer, tmp_path):
  """Each family's pair layout (BERT: [CLS] a [SEP] b [SEP], types 0/1; RoBERTa: <s> a </s></s> b </s>, types 0;
  DeBERTa-v3: [CLS] a [SEP] b [SEP] from a template) and "longest_first" truncation, against the tokenizers library
  encoding the same pairs with its own post-processor and truncation."""
  from tokenizers import Tokenizer
  tok = tokenizer if kind == "WordPiece" else load_tokenizer(trained_tokenizer(kind, tmp_path, TEXTS, pair=PAIRS[kind]))
  rng = np.random.default_rng(0)
  vocab = "Paris is the capital of France . The U.S. open starts in New York on Monday 's night".split()
  texts = [" ".join(rng.choice(vocab, rng.integers(1, 14))) for _ in range(40)]
  pairs = [" ".join(rng.choice(vocab, rng.integers(1, 14))) if i % 4 else None for i in range(40)]
  reference = Tokenizer.from_str(tok.backend.to_str())
  for max_length in (10, 16, 64):
    ids, types, cut = tokenize_pairs(texts, pairs, tok, max_length)
    reference.enable_truncation(max_length, strategy="longest_first")
    expected = [reference.encode(t, p) if p is not None else reference.encode(t) for t, p in zip(texts, pairs)]
    assert [list(x) for x in ids] == [e.ids for e in expected]
    assert [list(x) for x in types] == [e.type_ids for e in expected]
    reference.no_truncation()
    full = [reference.encode(t, p) if p is not None else reference.encode(t) for t, p in zip(texts, pairs)]
    assert list(cut) == [len(f.ids) > max_length for f in full]


def test_token_types_the_encoder_has_no_embedding_for_are_refused(tokenizer):
  ids, types, _ = tokenize_pairs(["a text", "another"], ["its pair", None], tokenizer, 32)  # BERT: types 0 and 1
  data = Encoded(ids, np.zeros((2, 1), np.int32), np.ones((2, 1), np.float32), type_ids=types)
  for type_vocab_size in (0, 2):  # no token types (ignored), or both types embedded
    check_token_types(data, type_vocab_size, "config.encoder.name='x'")
  with pytest.raises(UserError, match=r"^config.encoder.name='x': the tokenizer gives text pairs token type 1, but "
                                      r"the encoder has type_vocab_size 1;"):
    check_token_types(data, 1, "config.encoder.name='x'")
