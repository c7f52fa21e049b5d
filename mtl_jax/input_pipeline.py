"""Tokenised examples and padded batches.

Unpacked, sequences are padded to the smallest of a few fixed length buckets, so padding stays small and the train
step compiles at most once per bucket; packed, several whole texts share a row (`make_packed_batch`). Which rows form
the batch at each step, and with a token budget its size and bucket length, is `sampling.MixtureOrder`'s business;
evaluation and prediction pack every text once (`eval_batches`).
"""

import dataclasses
import math

import numpy as np

from mtl_jax.data import Table
from mtl_jax.errors import UserError
from mtl_jax.ragged import Ragged
from mtl_jax.sampling import first_fit, slots_of


@dataclasses.dataclass
class Encoded:
  """Tokenised examples: token ids (variable length, special tokens included), labels and weights per task.

  Tagging examples also carry `tags` ([len, T] tag ids at each word's first sub-token, -1 elsewhere), `starts` (the
  positions of those first sub-tokens) and `sentence` (the source sentence: a sentence longer than the window is
  split into several consecutive examples, so that every word is scored). Text examples have no starts.
  Multilabel and regression tasks keep their float targets in `targets` ([N, V], `Layout.target_columns`).
  The per-token fields are stored flat (`Ragged`, built from lists of arrays when given those), in memory or mapped
  from the token cache (mtl_jax/token_cache.py).
  """
  ids: Ragged
  labels: np.ndarray  # [N, T] int32, -1 = no label
  weights: np.ndarray  # [N, T] float32
  cut: np.ndarray | None = None  # [N] bool: the example's text was cut to max_length (None: none was)
  tags: Ragged | None = None  # [len, T] per example; None when no task is a tagging task
  starts: Ragged | None = None
  sentence: np.ndarray | None = None
  targets: np.ndarray | None = None  # None when no task has float targets
  type_ids: Ragged | None = None  # token types of text pairs; None when no example is a pair

  def __post_init__(self):
    for name, trailing in (("ids", ()), ("starts", ()), ("type_ids", ()), ("tags", self.labels.shape[1:])):
      if (value := getattr(self, name)) is not None and not isinstance(value, Ragged):
        setattr(self, name, Ragged.from_rows(value, np.int32, trailing))
    self.cut = np.zeros(len(self.ids), bool) if self.cut is None else np.asarray(self.cut, bool)

  def __len__(self) -> int:
    return len(self.ids)

  @property
  def lengths(self) -> np.ndarray:
    return self.ids.lengths()

  @property
  def truncated(self) -> int:
    """How many texts were cut to max_length."""
    return int(self.cut.sum())

  def select(self, positions: list[int], columns: np.ndarray) -> "Encoded":
    """The labels and weights of the tasks at `positions` and the float target `columns`, in that order (a table's
    examples: no tags); every task in order: these examples themselves (nothing copied)."""
    if list(positions) == list(range(self.labels.shape[1])) and (self.targets is None or len(columns) ==
                                                                   self.targets.shape[1]):
      return self
    targets = np.asarray(self.targets[:, columns]) if self.targets is not None and len(columns) else None
    return dataclasses.replace(self, labels=np.asarray(self.labels[:, positions]),
                               weights=np.asarray(self.weights[:, positions]), targets=targets)

  def take(self, idx: np.ndarray) -> "Encoded":
    """Examples `idx`, in that order (the per-token fields are not copied: `Ragged.take`)."""
    pick = lambda x: None if x is None else x.take(idx) if isinstance(x, Ragged) else np.asarray(x[idx])
    return Encoded(pick(self.ids), pick(self.labels), pick(self.weights), pick(self.cut), pick(self.tags),
                   pick(self.starts), pick(self.sentence), pick(self.targets), pick(self.type_ids))


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
  """The special token ids the tokenizer puts before and after one text ([CLS] and [SEP] for BERT)."""
  with_specials = tokenizer("a")["input_ids"]
  body = tokenizer("a", add_special_tokens=False)["input_ids"]
  start = next(i for i in range(len(with_specials)) if with_specials[i:i + len(body)] == body)
  return with_specials[:start], with_specials[start + len(body):]


def tokenize(texts: list[str], tokenizer, max_length: int) -> tuple[list[np.ndarray], np.ndarray]:
  """Token ids of each text with the tokenizer's special tokens, the text cut so the whole fits max_length; also
  which texts were cut ([N] bool)."""
  lead, trail = special_tokens(tokenizer)
  budget = max_length - len(lead) - len(trail)
  bodies = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []
  ids = [np.asarray(lead + x[:budget] + trail, np.int32) for x in bodies]
  return ids, np.asarray([len(x) > budget for x in bodies], bool)


def pair_template(tokenizer) -> tuple[list[int], list[int], list[int], list[int]]:
  """How the tokenizer lays out a text pair: the special tokens before the first text, between the two and after
  the second ([CLS] / [SEP] / [SEP] for BERT, <s> / </s></s> / </s> for RoBERTa), and the token type of each of the
  five parts (0 0 0 1 1 for BERT; 0 everywhere for families without token types)."""
  out = tokenizer("a", "b", return_token_type_ids=True)
  ids, types = list(out["input_ids"]), list(out.get("token_type_ids") or [0] * len(out["input_ids"]))
  a, b = (tokenizer(x, add_special_tokens=False)["input_ids"] for x in ("a", "b"))
  i = next(k for k in range(len(ids)) if ids[k:k + len(a)] == a)
  j = next(k for k in range(i + len(a), len(ids)) if ids[k:k + len(b)] == b)
  return ids[:i], ids[i + len(a):j], ids[j + len(b):], [types[0], types[i], types[i + len(a)] if j > i + len(a)
                                                          else types[j], types[j], types[-1]]


def pair_lengths(n1: int, n2: int, budget: int) -> tuple[int, int]:
  """How many tokens of each text a pair keeps within `budget`: the shorter text keeps all of its tokens, up to half
  the budget, the longer one gets the rest ("longest_first", as the tokenizers library truncates pairs)."""
  if n1 + n2 <= budget:
    return n1, n2
  if n1 <= n2:
    return min(n1, budget // 2), budget - min(n1, budget // 2)
  return budget - min(n2, budget // 2), min(n2, budget // 2)


def tokenize_pairs(texts: list[str], pairs: list[str | None], tokenizer,
                   max_length: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
  """Token ids and token type ids of each text with its pair (a text whose pair is None stands alone), laid out
  as the tokenizer lays out pairs and cut to max_length longest side first; also which examples were cut."""
  alone = [i for i, p in enumerate(pairs) if p is None]
  paired = [i for i, p in enumerate(pairs) if p is not None]
  ids, types, cut = [None] * len(texts), [None] * len(texts), np.zeros(len(texts), bool)
  single, cut[alone] = tokenize([texts[i] for i in alone], tokenizer, max_length)
  for i, x in zip(alone, single):
    ids[i], types[i] = x, np.zeros(len(x), np.int32)
  if paired:
    lead, mid, trail, kinds = pair_template(tokenizer)
    budget = max_length - len(lead) - len(mid) - len(trail)
    firsts = tokenizer([texts[i] for i in paired], add_special_tokens=False, verbose=False)["input_ids"]
    seconds = tokenizer([pairs[i] for i in paired], add_special_tokens=False, verbose=False)["input_ids"]
    for i, a, b in zip(paired, firsts, seconds):
      n1, n2 = pair_lengths(len(a), len(b), budget)
      parts = (lead, a[:n1], mid, b[:n2], trail)
      ids[i] = np.asarray([t for part in parts for t in part], np.int32)
      types[i] = np.asarray([k for part, k in zip(parts, kinds) for _ in part], np.int32)
      cut[i] = n1 + n2 < len(a) + len(b)
  return ids, types, cut


def check_token_types(data: Encoded, type_vocab_size: int, where: str) -> None:
  """Text pairs whose token types the encoder has no embedding for (a BERT-style tokenizer, types 0 / 1, beside an
  encoder with one type) would be looked up out of range, silently: an error naming the encoder instead."""
  if data.type_ids is None or not type_vocab_size:  # no pairs, or an encoder without token types (DeBERTa-v3)
    return
  if (top := max((int(t.max()) for t in data.type_ids if len(t)), default=0)) >= type_vocab_size:
    raise UserError(f"{where}: the tokenizer gives text pairs token type {top}, but the encoder has "
                    f"type_vocab_size {type_vocab_size}; use the encoder's own tokenizer (config.encoder.tokenizer)")


def flat_targets(per_task: list[np.ndarray]) -> np.ndarray | None:
  """Per-task float targets [N, width_t] -> [N, V] in task order; None when no task has any."""
  targets = np.concatenate(per_task, axis=1) if per_task else None
  return targets if targets is not None and targets.shape[1] else None


def encode_table(table: Table, tokenizer, max_length: int) -> Encoded:
  ids, types, cut = tokenize_pairs(table.texts, table.pairs or [None] * len(table), tokenizer, max_length)
  return Encoded(ids, table.labels, table.weights, cut, targets=flat_targets(table.targets),
                 type_ids=None if table.pairs is None else types)


def word_pieces(words: list[str], tokenizer) -> dict[str, list[int]]:
  """Each word's sub-tokens as it reads inside a sentence, after a space: what byte-level BPE marks with `Ġ`
  (RoBERTa; the same as transformers' `is_split_into_words` with `add_prefix_space`), SentencePiece with `▁`, and
  WordPiece not at all. Each word is tokenized after an anchor word whose tokens are then dropped."""
  if not words:
    return {}
  anchor = tokenizer("x", add_special_tokens=False)["input_ids"]
  after = tokenizer([f"x {w}" for w in words], add_special_tokens=False, verbose=False)["input_ids"]
  pieces = {w: ids[len(anchor):] for w, ids in zip(words, after) if ids[:len(anchor)] == anchor}
  if merged := [w for w in words if w not in pieces]:  # the word merged into the anchor: tokenized alone
    pieces.update(zip(merged, tokenizer(merged, add_special_tokens=False, verbose=False)["input_ids"]))
  return pieces


def word_windows(piece_counts: list[int], budget: int) -> list[tuple[int, int]]:
  """Consecutive word ranges [a, b) whose sub-tokens fit `budget`; every word lands in exactly one window."""
  windows, start, used = [], 0, 0
  for i, n in enumerate(piece_counts):
    if used + n > budget and i > start:
      windows.append((start, i))
      start, used = i, 0
    used += n
  return windows + [(start, len(piece_counts))] if piece_counts else []


def encode_words(sentences: list[tuple[str, ...]], tag_ids: list[np.ndarray], labels: np.ndarray,
                 weights: np.ndarray, tokenizer, max_length: int) -> Encoded:
  """Word sequences with word-level tag ids [n_words, T] -> windows of at most max_length tokens, tags on first
  sub-tokens. Text-level labels go to a sentence's first window only, so a split sentence counts once."""
  pieces = word_pieces(sorted({w for words in sentences for w in words}), tokenizer)
  lead, trail = special_tokens(tokenizer)
  budget = max_length - len(lead) - len(trail)
  num_tasks = labels.shape[1]
  out = {name: [] for name in ("ids", "labels", "weights", "tags", "starts", "sentence")}
  for s, words in enumerate(sentences):
    per_word = [(pieces[w] or [tokenizer.unk_token_id])[:budget] for w in words]
    for a, b in word_windows([len(p) for p in per_word], budget):
      body = [i for p in per_word[a:b] for i in p]
      ids = np.asarray(lead + body + trail, np.int32)
      starts = len(lead) + np.concatenate([[0], np.cumsum([len(p) for p in per_word[a:b]])[:-1]]).astype(np.int32)
      tags = np.full((len(ids), num_tasks), -1, np.int32)
      tags[starts] = tag_ids[s][a:b]
      for name, value in (("ids", ids), ("tags", tags), ("starts", starts), ("sentence", s), ("weights", weights[s]),
                          ("labels", labels[s] if a == 0 else np.full(num_tasks, -1, np.int32))):
        out[name].append(value)
  return Encoded(out["ids"], np.asarray(out["labels"], np.int32).reshape(-1, num_tasks),
                 np.asarray(out["weights"], np.float32).reshape(-1, num_tasks), tags=out["tags"], starts=out["starts"],
                 sentence=np.asarray(out["sentence"], np.int64))


def with_tags(data: Encoded) -> Encoded:
  """Text examples in a pool that also has tagging tasks: no tags, no word starts, one sentence each."""
  if data.tags is not None:
    return data
  return dataclasses.replace(data, tags=Ragged.filled(data.lengths, -1, data.labels.shape[1:]),
                             starts=Ragged.filled(np.zeros(len(data), np.int64), 0), sentence=np.arange(len(data)))


def with_targets(data: Encoded, width: int) -> Encoded:
  """Examples of a corpus without float targets in a layout that has `width` of them (multilabel, regression tasks
  of other corpora): zero targets, which their -1 labels leave unscored, so every batch carries `targets`."""
  if not width or data.targets is not None:
    return data
  return dataclasses.replace(data, targets=np.zeros((len(data), width), np.float32))


def concat(parts: list[Encoded]) -> Encoded:
  """One pool from several encoded corpora (sentence ids are renumbered so they stay distinct); one corpus is its own
  pool, nothing copied (a memory-mapped table stays mapped)."""
  if any(p.tags is not None for p in parts):
    parts = [with_tags(p) for p in parts]
  if len(parts) == 1:
    return parts[0]
  tagged = parts[0].tags is not None
  offsets = np.cumsum([0] + [int(p.sentence.max()) + 1 if tagged and len(p) else 0 for p in parts])
  width = max((p.targets.shape[1] for p in parts if p.targets is not None), default=0)
  joined = lambda field: Ragged.concat([getattr(p, field) for p in parts])
  return Encoded(joined("ids"), np.concatenate([p.labels for p in parts]), np.concatenate([p.weights for p in parts]),
                 np.concatenate([p.cut for p in parts]), joined("tags") if tagged else None,
                 joined("starts") if tagged else None,
                 np.concatenate([p.sentence + o for p, o in zip(parts, offsets)]) if tagged else None,
                 np.concatenate([np.zeros((len(p), width), np.float32) if p.targets is None else p.targets
                                 for p in parts]) if width else None,
                 Ragged.concat([Ragged.filled(p.lengths, 0) if p.type_ids is None else p.type_ids for p in parts])
                 if any(p.type_ids is not None for p in parts) else None)


def bucket_length(longest: int, buckets: tuple[int, ...]) -> int:
  """The smallest bucket that fits `longest` tokens."""
  return next((b for b in sorted(buckets) if b >= longest), max(buckets))


def padded(sequences: list[np.ndarray], idx: np.ndarray, batch_size: int, length: int, fill,
           trailing: tuple[int, ...] = ()) -> np.ndarray:
  """Per-token int32 arrays of rows `idx` ([n, *trailing] each), cut or padded with `fill` to
  [batch_size, length, *trailing]."""
  out = np.full((batch_size, length, *trailing), fill, np.int32)
  for row, i in enumerate(idx):
    n = min(len(sequences[i]), length)
    out[row, :n] = sequences[i][:n]
  return out


def stacked(array: np.ndarray, idx: np.ndarray, batch_size: int, fill, dtype) -> np.ndarray:
  """Rows `idx` of a per-example array, padded with `fill` to batch_size rows."""
  out = np.full((batch_size, *array.shape[1:]), fill, dtype)
  out[:len(idx)] = array[idx]
  return out


def make_batch(data: Encoded, idx: np.ndarray, batch_size: int, buckets: tuple[int, ...], pad_id: int,
               rows: slice = slice(None), length: int | None = None) -> dict:
  """Rows `idx` as padded numpy arrays; missing rows (a short last batch) get weight 0 and no labels. `rows` picks
  the part of the global batch to build (a process's share); the length is the whole batch's bucket (or `length`
  when given: a token-budget batch's bucket, which its rows fit), so every process pads to the same shape."""
  length = length or bucket_length(max(len(data.ids[i]) for i in idx), buckets)
  start, stop, _ = rows.indices(batch_size)
  idx, batch_size = idx[start:stop], stop - start
  mask = np.zeros((batch_size, length), np.int32)
  for row, i in enumerate(idx):
    mask[row, :min(len(data.ids[i]), length)] = 1
  batch = {"input_ids": padded(data.ids, idx, batch_size, length, pad_id), "attention_mask": mask,
           "labels": stacked(data.labels, idx, batch_size, -1, np.int32),
           "weights": stacked(data.weights, idx, batch_size, 0, np.float32)}
  if data.type_ids is not None:
    batch["token_type_ids"] = padded(data.type_ids, idx, batch_size, length, 0)
  if data.targets is not None:
    batch["targets"] = stacked(data.targets, idx, batch_size, 0, np.float32)
  if data.tags is not None:
    batch["tags"] = padded(data.tags, idx, batch_size, length, -1, (data.labels.shape[1],))
  return batch


def make_packed_batch(data: Encoded, idx: np.ndarray, places: np.ndarray, batch_size: int, length: int, slots: int,
                      pad_id: int, rows: slice = slice(None)) -> dict:
  """Rows `idx` packed: example idx[i] goes to row places[i] of [batch_size, length], after the examples before it
  there, as the `slots`-th text of its row at most. `attention_mask` holds each token's text number in its row (1, 2,
  ...; 0: padding), which the encoder reads as block-diagonal attention with positions restarting per text; the
  per-example fields are per slot ([batch_size, slots, ...]; empty slots: no labels, weight 0). `rows` picks the
  part of the batch to build (a process's share)."""
  start, stop, _ = rows.indices(batch_size)
  n, tasks = stop - start, data.labels.shape[1]
  batch = {"input_ids": np.full((n, length), pad_id, np.int32), "attention_mask": np.zeros((n, length), np.int32),
           "labels": np.full((n, slots, tasks), -1, np.int32), "weights": np.zeros((n, slots, tasks), np.float32)}
  if data.type_ids is not None:
    batch["token_type_ids"] = np.zeros((n, length), np.int32)
  if data.targets is not None:
    batch["targets"] = np.zeros((n, slots, data.targets.shape[1]), np.float32)
  if data.tags is not None:
    batch["tags"] = np.full((n, length, tasks), -1, np.int32)
  sizes = data.lengths[idx]
  for i, place, size, s, a in zip(idx, places, sizes, *packed_offsets(sizes, places)):
    if not start <= place < stop:
      continue
    r, b = place - start, a + size
    if b > length or s >= slots:
      raise ValueError(f"example {i} does not fit row {place} ({b} > {length} tokens or {s + 1} > {slots} texts)")
    batch["input_ids"][r, a:b], batch["attention_mask"][r, a:b] = data.ids[i], s + 1
    batch["labels"][r, s], batch["weights"][r, s] = data.labels[i], data.weights[i]
    if data.type_ids is not None:
      batch["token_type_ids"][r, a:b] = data.type_ids[i]
    if data.targets is not None:
      batch["targets"][r, s] = data.targets[i]
    if data.tags is not None:
      batch["tags"][r, a:b] = data.tags[i]
  return batch


def packed_offsets(sizes: np.ndarray, places: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Texts of `sizes` tokens packed in order into rows `places` (`make_packed_batch`): each one's slot in its row and
  its first token there."""
  slot, first = np.zeros(len(places), np.int64), np.zeros(len(places), np.int64)
  texts, filled = {}, {}
  for k, (size, place) in enumerate(zip(sizes, places)):
    slot[k], first[k] = texts.get(place, 0), filled.get(place, 0)
    texts[place], filled[place] = slot[k] + 1, first[k] + size
  return slot, first


def fold_rows(batch: dict, length: int) -> dict:
  """A packed batch (`make_packed_batch`) of rows of l tokens as rows of `length` (a multiple of l): each length / l
  consecutive rows side by side, the j-th's texts numbered after j x slots_of(l) and its slots after as many, so the
  batch is an ordinary packed batch of rows of `length` whose texts never run across a multiple of l (the encoder's
  attention blocks, `Encoder.blocks`). The train step sees one shape whatever the rows' length."""
  rows, size = batch["attention_mask"].shape
  k = length // size
  if k == 1:
    return batch
  folded = {key: value.reshape(rows // k, k * value.shape[1], *value.shape[2:]) for key, value in batch.items()}
  mask, offset = batch["attention_mask"], (np.arange(rows) % k * slots_of(size))[:, None]
  folded["attention_mask"] = np.where(mask > 0, mask + offset, 0).reshape(rows // k, length).astype(mask.dtype)
  return folded


def make_step_batch(data: Encoded, idx: np.ndarray, places: np.ndarray, batch_size: int, length: int,
                    row_length: int, pad_id: int, rows: slice = slice(None)) -> dict:
  """The train step's packed batch of `batch_size` rows of `row_length`: rows `idx` packed into rows of `length`
  (`make_packed_batch`, `slots_of(length)` texts a row; `places` among batch_size x row_length / length such rows),
  folded into rows of `row_length` (`fold_rows`). `rows` picks the part of the folded batch to build."""
  k = row_length // length
  start, stop, _ = rows.indices(batch_size)
  return fold_rows(make_packed_batch(data, idx, places, batch_size * k, length, slots_of(length), pad_id,
                                     slice(start * k, stop * k)), row_length)


@dataclasses.dataclass(frozen=True)
class EvalBatch:
  """A batch of evaluation or prediction: examples `idx` packed into `rows` rows of `length` tokens, idx[k] into row
  places[k] after the examples before it there (`make_packed_batch`)."""
  idx: np.ndarray
  places: np.ndarray
  rows: int
  length: int

  def build(self, data: Encoded, pad_id: int, rows: slice = slice(None)) -> dict:
    """The batch's arrays (`rows`: a process's share)."""
    return make_packed_batch(data, self.idx, self.places, self.rows, self.length, slots_of(self.length), pad_id, rows)

  def positions(self, data: Encoded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each example's outputs are: its text's row in the pooled outputs ([rows x slots, ...]), its row and its
    first token in the per-token outputs ([rows, length, ...])."""
    slot, first = packed_offsets(data.lengths[self.idx], self.places)
    return self.places * slots_of(self.length) + slot, self.places, first


def eval_rows(batch_size: int, buckets: tuple[int, ...], multiple: int = 1) -> int:
  """Rows of the longest bucket in an evaluation batch: the tokens of `batch_size` texts of the shortest bucket (a
  multiple of `multiple`, the batch shards)."""
  return max(batch_size * min(buckets) // max(buckets) // multiple, 1) * multiple


def eval_batches(lengths: np.ndarray, rows: int, length: int, multiple: int = 1) -> list[EvalBatch]:
  """Every example once, packed into rows of `length` tokens (first-fit decreasing, `slots_of(length)` texts a row
  at most), `rows` rows a batch. The last batch has the fewest rows of `multiple` x a power of two that hold its
  texts (little padding, and at most one more shape per halving, each compiled once)."""
  packed = [members for _, members in first_fit(np.asarray(lengths), np.full(len(lengths), length))]
  batches = []
  for b in range(0, len(packed), rows):
    chunk = packed[b:b + rows]
    size = min(rows, multiple * 2 ** math.ceil(math.log2(-(-len(chunk) // multiple))))
    batches.append(EvalBatch(np.concatenate(chunk), np.repeat(np.arange(len(chunk)), [len(m) for m in chunk]),
                             size, length))
  return batches
