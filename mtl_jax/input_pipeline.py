"""Tokenised examples and step-indexed batches.

The training batch at step s is a pure function of (seed, s, data): epoch e = s // steps_per_epoch is a seeded
permutation of the rows, and step s takes its slice. A resumed run therefore sees exactly the batches it would have
seen. Sequences are padded to the smallest of a few fixed length buckets, so padding stays small and the train step
compiles at most once per bucket; batches group texts of similar length.
"""

import dataclasses

import numpy as np

from mtl_jax.data import Table


@dataclasses.dataclass
class Encoded:
  """Token ids per example (variable length, special tokens included) with their labels and weights."""
  ids: list[np.ndarray]
  labels: np.ndarray  # [N, T] int32, -1 = no label
  weights: np.ndarray  # [N, T] float32
  truncated: int  # how many texts were cut to max_length

  def __len__(self) -> int:
    return len(self.ids)

  @property
  def lengths(self) -> np.ndarray:
    return np.array([len(x) for x in self.ids])


def tokenize(texts: list[str], tokenizer, max_length: int) -> tuple[list[np.ndarray], int]:
  """Token ids of each text, cut to max_length; also the number of texts that were cut."""
  full = tokenizer(texts, truncation=False, add_special_tokens=True, verbose=False)["input_ids"]
  truncated = sum(len(x) > max_length for x in full)
  cut = [np.asarray(x[:max_length - 1] + x[-1:] if len(x) > max_length else x, np.int32) for x in full]
  return cut, truncated


def encode_table(table: Table, tokenizer, max_length: int) -> Encoded:
  ids, truncated = tokenize(table.texts, tokenizer, max_length)
  return Encoded(ids, table.labels, table.weights, truncated)


def bucket_length(longest: int, buckets: tuple[int, ...]) -> int:
  """The smallest bucket that fits `longest` tokens."""
  return next((b for b in sorted(buckets) if b >= longest), max(buckets))


def make_batch(data: Encoded, idx: np.ndarray, batch_size: int, buckets: tuple[int, ...], pad_id: int) -> dict:
  """Rows `idx` as padded numpy arrays; missing rows (a short last batch) get weight 0 and no labels."""
  length = bucket_length(max(len(data.ids[i]) for i in idx), buckets)
  input_ids = np.full((batch_size, length), pad_id, np.int32)
  mask = np.zeros((batch_size, length), np.int32)
  for row, i in enumerate(idx):
    n = min(len(data.ids[i]), length)
    input_ids[row, :n], mask[row, :n] = data.ids[i][:n], 1
  labels = np.full((batch_size, data.labels.shape[1]), -1, np.int32)
  weights = np.zeros((batch_size, data.weights.shape[1]), np.float32)
  labels[:len(idx)], weights[:len(idx)] = data.labels[idx], data.weights[idx]
  return {"input_ids": input_ids, "attention_mask": mask, "labels": labels, "weights": weights}


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  return max(num_examples // batch_size, 1)


class TrainOrder:
  """Rows of the training batch at each step, a pure function of (seed, step, data).

  Epoch e is a seeded permutation (its last partial batch dropped, a different one each epoch). With
  `group_by_length`, each run of `group` consecutive batches of that permutation is sorted by length before it is
  cut into batches, and the batches are then shuffled: every batch holds texts of similar length (little padding)
  while the epoch stays random. The current epoch's order is cached.
  """

  def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, group_by_length: bool = True, group: int = 16):
    self.lengths, self.batch_size, self.seed = np.asarray(lengths), batch_size, seed
    self.group = group if group_by_length else 0
    self.per_epoch = steps_per_epoch(len(self.lengths), batch_size)
    self._epoch, self._batches = None, None

  def epoch_batches(self, epoch: int) -> np.ndarray:
    """[steps_per_epoch, batch_size] row indices of one epoch."""
    rng = np.random.default_rng([self.seed, epoch])
    perm = rng.permutation(len(self.lengths))[:self.per_epoch * self.batch_size]
    if not self.group:
      return perm.reshape(self.per_epoch, self.batch_size)
    chunk = self.group * self.batch_size
    perm = np.concatenate([c[np.argsort(self.lengths[c], kind="stable")]
                           for c in np.split(perm, range(chunk, len(perm), chunk))])
    return perm.reshape(self.per_epoch, self.batch_size)[rng.permutation(self.per_epoch)]

  def indices(self, step: int) -> np.ndarray:
    epoch, offset = divmod(step, self.per_epoch)
    if epoch != self._epoch:
      self._epoch, self._batches = epoch, self.epoch_batches(epoch)
    return self._batches[offset]


def eval_indices(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
  """Every row once, in batches of similar length (shortest first); the last batch may be short (make_batch pads it
  with weight-0 rows)."""
  order = np.argsort(np.asarray(lengths), kind="stable")
  return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
