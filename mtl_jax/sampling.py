"""Mixing several corpora into one stream of training batches.

The corpora are pooled consecutively (corpus i holds pooled rows offset_i .. offset_i + n_i - 1). Each epoch takes a
fixed number of rows from every corpus, in proportion to its sampling probability, then shuffles them into batches.
The batch at step s is a pure function of (seed, s, sizes, probabilities): a resumed run sees
exactly the batches it would have seen.
"""

import math
from collections.abc import Sequence

import numpy as np

from mtl_jax.errors import UserError

STRATEGIES = ("proportional", "temperature", "uniform", "explicit")
_CORPUS_TAG, _DOWNSAMPLE_TAG = 0x6D6978, 0x647377  # keep these seed streams apart from the epoch shuffle's [seed, e]


def _number(value, field: str, expected: str, ok) -> float:
  """`value` as a float, or a UserError naming `field` when it is not a number satisfying `ok`."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not ok(value):
    raise UserError(f"{field}: expected {expected}, found {value!r}")
  return float(value)


def _check_sizes(sizes: Sequence[int], names: Sequence[str] | None) -> np.ndarray:
  if len(sizes) == 0:
    raise UserError("config.sampling: expected at least one corpus, found none")
  for i, n in enumerate(sizes):
    if int(n) < 1:
      name = f" ('{names[i]}')" if names is not None else ""
      raise UserError(f"corpus {i}{name}: expected at least 1 training example, found {int(n)}")
  return np.asarray(sizes, np.float64)


def corpus_probabilities(sizes: Sequence[int], strategy: str, temperature: float = 1.0,
                         weights: Sequence[float] | None = None, names: Sequence[str] | None = None) -> np.ndarray:
  """Sampling probability of each corpus: proportional (n_i), temperature (n_i^(1/T)), uniform or explicit weights."""
  n = _check_sizes(sizes, names)
  if strategy not in STRATEGIES:
    raise UserError(f"config.sampling.strategy: expected one of {', '.join(STRATEGIES)}, found {strategy!r}")
  if weights is not None and strategy != "explicit":
    raise UserError(f"config.sampling.weights: only used with strategy 'explicit', found strategy {strategy!r}")
  if strategy == "temperature":
    t = _number(temperature, "config.sampling.temperature", "a number > 0", lambda x: x > 0)
    logits = np.log(n) / t  # log space: no overflow for large corpora or small T; T = inf gives uniform
    p = np.exp(logits - logits.max())
  elif strategy == "uniform":
    p = np.ones_like(n)
  elif strategy == "explicit":
    if weights is None or len(weights) != len(n):
      raise UserError(f"config.sampling.weights: expected {len(n)} weights (one per corpus), found {weights!r}")
    p = np.array([_number(w, f"config.sampling.weights[{i}]", "a finite number >= 0",
                          lambda x: math.isfinite(x) and x >= 0) for i, w in enumerate(weights)])
    if p.sum() <= 0:
      raise UserError(f"config.sampling.weights: expected at least one weight > 0, found {list(weights)}")
  else:
    p = n
  return p / p.sum()


def largest_remainder(probabilities: np.ndarray, total: int) -> np.ndarray:
  """Integer counts summing to `total`, each within 1 of p_i * total (largest fractional parts round up)."""
  raw = np.asarray(probabilities, np.float64) * total
  counts = np.floor(raw).astype(np.int64)
  short = total - int(counts.sum())
  counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
  return counts


def epoch_examples_for(size: int, probability: float, name: str = "") -> int:
  """Epoch length (in examples) at which a corpus of `size` rows, sampled with `probability`, is seen once."""
  if probability <= 0:
    raise UserError(f"config.sampling.epoch_task: expected a task whose corpus has sampling probability > 0, found "
                    f"{name or 'a corpus'} with probability {probability}")
  return max(int(size / probability + 0.5), 1)


def downsample(num_examples: int, fraction: float, seed: int) -> np.ndarray:
  """Sorted, seeded subset of round(fraction * n) row indices (at least 1); fraction 1 keeps every row."""
  f = _number(fraction, "config.sampling.fraction", "a number in (0, 1]", lambda x: 0 < x <= 1)
  if f == 1:
    return np.arange(num_examples)
  k = min(max(math.floor(f * num_examples + 0.5), 1), num_examples)
  rng = np.random.default_rng([seed, _DOWNSAMPLE_TAG])
  return np.sort(rng.choice(num_examples, k, replace=False))


def corpus_stream(size: int, start: int, count: int, seed: int, corpus: int) -> np.ndarray:
  """Positions start .. start+count-1 of corpus `corpus`'s endless stream: round r = pos // size is a permutation
  of its rows seeded by (seed, corpus, r), so every row is seen once before any repeats."""
  if count == 0:
    return np.zeros(0, np.int64)
  first, last = start // size, (start + count - 1) // size
  rounds = [np.random.default_rng([seed, corpus, r, _CORPUS_TAG]).permutation(size) for r in range(first, last + 1)]
  skip = start - first * size
  return np.concatenate(rounds)[skip:skip + count]


def group_by_length(rows: np.ndarray, lengths: np.ndarray, batch_size: int, group: int,
                    rng: np.random.Generator) -> np.ndarray:
  """[steps, batch_size] batches: runs of `group` batches sorted by length, then the batches shuffled."""
  chunk = group * batch_size
  chunks = np.split(rows, range(chunk, len(rows), chunk))
  rows = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks])
  steps = len(rows) // batch_size
  return rows.reshape(steps, batch_size)[rng.permutation(steps)]


class MixtureOrder:
  """Rows of the training batch at each step, drawn across corpora; a pure function of (seed, step, sizes, p).

  One epoch holds `per_epoch * batch_size` rows (`epoch_examples`, by default the pool's size, cut to whole
  batches). Corpus i contributes exactly `counts[i]` of them (largest-remainder rounding of p_i * rows), namely
  positions counts[i] * e .. counts[i] * (e + 1) - 1 of its own stream of seeded permutations: a small corpus is
  cycled (upsampled), a large one is walked through over several epochs. The epoch's rows are shuffled (seeded by
  [seed, e]), optionally grouped by length (`group_by_length`), and cut into batches; the current epoch is cached.
  """

  def __init__(self, corpus_sizes: Sequence[int], probabilities: Sequence[float], batch_size: int, seed: int,
               lengths: np.ndarray | None = None, group_by_length: bool = True, group: int = 16,
               epoch_examples: int | None = None, names: Sequence[str] | None = None):
    self.sizes = _check_sizes(corpus_sizes, names).astype(np.int64)
    p = np.asarray(probabilities, np.float64)
    if p.shape != self.sizes.shape or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
      raise UserError(f"config.sampling: expected {len(self.sizes)} sampling probabilities >= 0 (one per corpus, "
                      f"not all 0), found {list(probabilities)}")
    self.probabilities = p / p.sum()
    self.batch_size = int(_number(batch_size, "config.train.batch_size", "an integer >= 1",
                                  lambda x: x >= 1 and x == int(x)))
    total = int(self.sizes.sum()) if epoch_examples is None else epoch_examples
    total = int(_number(total, "config.sampling.epoch_examples", "an integer >= 1", lambda x: x >= 1 and x == int(x)))
    self.seed = seed
    self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
    self.lengths = None if lengths is None else np.asarray(lengths)
    if self.lengths is not None and len(self.lengths) != self.sizes.sum():
      raise ValueError(f"lengths: expected {self.sizes.sum()} entries (the pool), found {len(self.lengths)}")
    self.group = group if group_by_length and self.lengths is not None else 0
    self.per_epoch = max(total // self.batch_size, 1)
    self.counts = largest_remainder(self.probabilities, self.per_epoch * self.batch_size)
    self._epoch, self._batches = None, None

  def epoch_rows(self, epoch: int) -> np.ndarray:
    """The pooled rows of one epoch, corpus by corpus (unshuffled)."""
    return np.concatenate([o + corpus_stream(int(n), int(c) * epoch, int(c), self.seed, i)
                           for i, (n, c, o) in enumerate(zip(self.sizes, self.counts, self.offsets))])

  def epoch_batches(self, epoch: int) -> np.ndarray:
    """[per_epoch, batch_size] row indices of one epoch."""
    rng = np.random.default_rng([self.seed, epoch])
    rows = rng.permutation(self.epoch_rows(epoch))
    if not self.group:
      return rows.reshape(self.per_epoch, self.batch_size)
    return group_by_length(rows, self.lengths, self.batch_size, self.group, rng)

  def indices(self, step: int) -> np.ndarray:
    epoch, offset = divmod(step, self.per_epoch)
    if epoch != self._epoch:
      self._epoch, self._batches = epoch, self.epoch_batches(epoch)
    return self._batches[offset]
