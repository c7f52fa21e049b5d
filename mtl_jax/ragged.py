"""Rows of different lengths (token ids, tags, word starts) stored flat, in memory or memory-mapped from the token cache.

A list of one small numpy array per example costs ~100 bytes of Python object per row on top of the data, and a
memory map cannot hold one; `Ragged` keeps all rows in one array `values` ([total, *trailing]) with `offsets`
([rows + 1]): row i is values[offsets[i]:offsets[i + 1]]. An optional `index` picks and orders stored rows (a
validation split taken out of a table), so a split of a memory-mapped table copies nothing: a batch reads only the
pages of its own rows, and host memory stays flat in the dataset's size.
"""

import numpy as np


def offsets_of(lengths) -> np.ndarray:
  """[rows + 1] int64 offsets of rows of `lengths`, laid end to end."""
  offsets = np.zeros(len(lengths) + 1, np.int64)
  np.cumsum(lengths, out=offsets[1:])
  return offsets


class Ragged:
  """A sequence of arrays (`len`, `r[i]`, iteration) stored flat; see the module docstring."""

  def __init__(self, values: np.ndarray, offsets: np.ndarray, index: np.ndarray | None = None):
    self.values, self.offsets, self.index = values, offsets, index
    self._lengths = None

  @classmethod
  def from_rows(cls, rows, dtype=np.int32, trailing: tuple[int, ...] = ()) -> "Ragged":
    """From a list of arrays (or lists) of shape [n_i, *trailing]."""
    rows = list(rows)
    offsets = offsets_of([len(r) for r in rows])
    values = np.concatenate([np.asarray(r, dtype).reshape(-1, *trailing) for r in rows]) if rows else None
    return cls(values if values is not None else np.zeros((0, *trailing), dtype), offsets)

  @classmethod
  def filled(cls, lengths: np.ndarray, fill, trailing: tuple[int, ...] = (), dtype=np.int32) -> "Ragged":
    """Rows of `lengths` holding `fill` everywhere (no tags on a text example, say)."""
    offsets = offsets_of(lengths)
    return cls(np.full((int(offsets[-1]), *trailing), fill, dtype), offsets)

  def __len__(self) -> int:
    return len(self.offsets) - 1 if self.index is None else len(self.index)

  def __getitem__(self, i) -> np.ndarray:
    j = int(i if self.index is None else self.index[i])
    return self.values[self.offsets[j]:self.offsets[j + 1]]

  def __iter__(self):
    return (self[i] for i in range(len(self)))

  def lengths(self) -> np.ndarray:
    """The length of every row (computed once)."""
    if self._lengths is None:
      stored = np.diff(self.offsets)
      self._lengths = stored if self.index is None else stored[self.index]
    return self._lengths

  def take(self, idx: np.ndarray) -> "Ragged":
    """Rows `idx`, in that order, without copying the values."""
    idx = np.asarray(idx, np.int64)
    return Ragged(self.values, self.offsets, idx if self.index is None else np.asarray(self.index)[idx])

  def compact(self) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of exactly these rows, in order: the stored arrays themselves when no index picks rows."""
    if self.index is None:
      return self.values, self.offsets
    lengths = self.lengths()
    offsets = offsets_of(lengths)
    starts = np.asarray(self.offsets)[np.asarray(self.index)]
    positions = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - starts, lengths)  # each value's stored position
    return np.asarray(self.values[positions]), offsets

  @staticmethod
  def concat(parts: list["Ragged"]) -> "Ragged":
    """The rows of `parts` one after the other (one part: itself, nothing copied)."""
    if len(parts) == 1:
      return parts[0]
    compacted = [p.compact() for p in parts]
    shift = np.cumsum([0] + [int(o[-1]) for _, o in compacted[:-1]])
    offsets = np.concatenate([[0]] + [o[1:] + s for (_, o), s in zip(compacted, shift)]).astype(np.int64)
    return Ragged(np.concatenate([v for v, _ in compacted]), offsets)
