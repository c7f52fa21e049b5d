"""Mixing several corpora into one stream of training batches.

The corpora are pooled consecutively (corpus i holds pooled rows offset_i .. offset_i + n_i - 1). Each epoch takes a
fixed number of rows from every corpus, in proportion to its sampling probability, then shuffles them into batches:
of a fixed number of rows, or, with a token budget (`config.data.tokens_per_batch`), of B_L rows of bucket length L
each, or, packed (`config.data.packing`), of R_L rows of a packed length L that each hold several texts, so that
every batch holds about the same number of tokens. The batch at step s is a pure function of (seed, s, sizes,
probabilities, lengths, buckets, budget, packing): a resumed run sees exactly the batches it would have seen.
"""

import bisect
import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from mtl_jax.errors import UserError

STRATEGIES = ("proportional", "temperature", "uniform", "explicit")
_CORPUS_TAG, _DOWNSAMPLE_TAG = 0x6D6978, 0x647377  # keep these seed streams apart from the epoch shuffle's [seed, e]


def number(value, field: str, expected: str, ok) -> float:
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
  """Sampling probability of each corpus: proportional (n_i), temperature (n_i^(1/T)), uniform or explicit weights
  (`config.sampling`, checked by schema.validate; the sizes are checked here, where they are known)."""
  n = _check_sizes(sizes, names)
  if strategy == "temperature":
    logits = np.log(n) / float(temperature)  # log space: no overflow for large corpora or small T; T = inf: uniform
    p = np.exp(logits - logits.max())
  elif strategy == "uniform":
    p = np.ones_like(n)
  elif strategy == "explicit":
    p = np.asarray(weights, np.float64)
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
  """Sorted, seeded subset of round(fraction * n) row indices (at least 1); fraction (in (0, 1], as schema.validate
  checks `data.downsample`) 1 keeps every row."""
  f = float(fraction)
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
  """[steps, batch_size] batches: runs of `group` batches sorted by length (in place: `rows` is the caller's own
  array), then the batches shuffled."""
  chunk = group * batch_size
  for start in range(0, len(rows), chunk):
    c = rows[start:start + chunk]
    c[:] = c[np.argsort(lengths[c], kind="stable")]
  steps = len(rows) // batch_size
  return rows.reshape(steps, batch_size)[rng.permutation(steps)]


def bucket_batch_sizes(buckets: Sequence[int], tokens_per_batch: int, multiple: int = 1) -> dict[int, int]:
  """{L: B_L}: the training batch size of each bucket length L under a token budget, the largest multiple of
  `multiple` (the batch shards x micro-batches) with B_L * L <= tokens_per_batch. A budget that gives the longest
  bucket fewer than `multiple` rows is a UserError naming config.data.tokens_per_batch."""
  budget = int(number(tokens_per_batch, "config.data.tokens_per_batch", "an integer >= 1",
                       lambda x: x >= 1 and x == int(x)))
  longest = max(buckets)
  if budget < multiple * longest:
    raise UserError(f"config.data.tokens_per_batch: {budget} tokens cannot hold {multiple} examples (the batch shards "
                    f"(mesh data x fsdp) x config.train.grad_accumulation) of the longest bucket, {longest} tokens; "
                    f"expected at least {multiple * longest}")
  return {int(length): budget // int(length) // multiple * multiple for length in sorted(buckets)}


def bucket_of(lengths: np.ndarray, buckets: Sequence[int]) -> np.ndarray:
  """Index (into sorted `buckets`) of the smallest bucket that fits each length; the largest for longer ones."""
  ordered = np.sort(np.asarray(buckets))
  return np.minimum(np.searchsorted(ordered, np.asarray(lengths), side="left"), len(ordered) - 1)


def cut_by_bucket(rows: np.ndarray, buckets: np.ndarray, sizes: Sequence[int]) -> tuple[list[np.ndarray], np.ndarray]:
  """(batches, the bucket index of each): bucket k's rows (`buckets[i]` is row i's bucket), in their order, cut into
  batches of `sizes[k]` rows. The rows left over (< sizes[k]) move up to bucket k + 1, ahead of its own rows, so
  they are padded longer; the largest bucket's leftover is a last, short batch (make_batch pads it with empty
  rows). Every row lands in exactly one batch."""
  batches, bucket_ids, carry = [], [], rows[:0]
  for k, size in enumerate(sizes):
    mine = np.concatenate([carry, rows[buckets == k]])
    full = len(mine) // size * size
    batches += np.split(mine[:full], full // size) if full else []
    bucket_ids += [k] * (full // size)
    carry = mine[full:]
  if len(carry):
    batches.append(carry)
    bucket_ids.append(len(sizes) - 1)
  return batches, np.asarray(bucket_ids, np.int64)


def bucket_steps(counts: Sequence[int], sizes: Sequence[int]) -> int:
  """How many batches `cut_by_bucket` makes of `counts[k]` rows in bucket k (the count needs no rows, no order)."""
  steps, carry = 0, 0
  for n, size in zip(counts, sizes):
    steps, carry = steps + (int(n) + carry) // size, (int(n) + carry) % size
  return steps + (carry > 0)


PACK_CHUNK = 1024  # texts packed together: the epoch's shuffle decides which texts meet, first-fit within a chunk
MIN_FILL = 0.9  # the least share of real tokens in a packed row shorter than the longest (`Packing.pack`)


def first_fit(n: np.ndarray, shortest: np.ndarray) -> list[tuple[int, np.ndarray]]:
  """First-fit decreasing: texts of `n` tokens, longest first, each into the first packed row at least `shortest`
  long with room for its tokens and a free slot, else into a new row of its `shortest` (so long texts open long rows
  and shorter ones fill them first). Returns (row length, text indices) of each packed row."""
  free, used, cap, size = (np.zeros(len(n), np.int64) for _ in range(4))
  members = []
  for i in np.argsort(-n, kind="stable"):
    m = len(members)
    fits = (free[:m] >= n[i]) & (used[:m] < cap[:m]) & (size[:m] >= shortest[i])
    j = int(np.argmax(fits)) if fits.any() else m
    if j == m:
      size[j] = shortest[i]
      free[j], cap[j] = size[j], slots_of(size[j])
      members.append([])
    free[j], used[j] = free[j] - n[i], used[j] + 1
    members[j].append(i)
  return [(int(size[j]), np.asarray(m, np.int64)) for j, m in enumerate(members)]


def slots_of(length: int) -> int:
  """The most texts a packed row of `length` tokens holds."""
  return max(int(length) // 8, 1)


@dataclasses.dataclass(frozen=True)
class Packing:
  """Packed batches: rows of one of `lengths` tokens (ascending), each holding up to `slots_of(length)` whole texts; a
  batch holds `rows[i]` rows of `lengths[i]` (about the same tokens at every length: attention's cost grows with the
  row's length, so short texts are packed into short rows)."""
  lengths: tuple[int, ...]
  rows: tuple[int, ...]

  @property
  def length(self) -> int:
    """The longest packed row (the longest bucket: every text fits)."""
    return self.lengths[-1]

  def pack(self, rows: np.ndarray, lengths: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """`rows` (pooled rows, in order; their token counts `lengths`, at most `length`) packed: within each run of
    PACK_CHUNK, first-fit decreasing (`first_fit`). A shorter row left less than MIN_FILL full costs more in padding
    than its attention saves, so its texts pack again with rows of the next length as the shortest they may open or
    join, until every shorter row is that full. Returns (length, pooled rows) of each packed row; every row lands in
    exactly one."""
    packs, sizes = [], np.asarray(self.lengths)
    for start in range(0, len(rows), PACK_CHUNK):
      chunk, n = rows[start:start + PACK_CHUNK], np.minimum(lengths[start:start + PACK_CHUNK], self.length)
      shortest = sizes[np.searchsorted(sizes, n)]  # the shortest row each text may open or join
      while True:
        members = first_fit(n, shortest)
        loose = [m for size, m in members if size < self.length and n[m].sum() < MIN_FILL * size]
        if not loose:
          break
        for m in loose:
          shortest[m] = sizes[np.searchsorted(sizes, shortest[m], side="right")]
      packs += [(size, chunk[m]) for size, m in members]
    return packs


  def batches(self, rows: np.ndarray, lengths: np.ndarray, rng) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """`rows` (their token counts `lengths`) packed (`pack`), the packed rows shuffled by `rng` and cut into batches
    of each length's row count (the few left over are joined into rows of the next length: two rows of 32 make one
    of 64; only the longest length's last batch may be short), batches of several lengths shuffled together:
    (pooled rows, length, each pooled row's row in the batch) of each batch."""
    packs = self.pack(rows, lengths)
    packs = [packs[i] for i in rng.permutation(len(packs))]
    groups, carried = [], []  # batches (length, its packed rows); rows carried up from the length below
    for i, (length, count) in enumerate(zip(self.lengths, self.rows)):
      same, carried = carried + [members for size, members in packs if size == length], []
      whole = len(same) // count * count if i + 1 < len(self.lengths) else len(same)
      groups += [(length, same[j:j + count]) for j in range(0, whole, count)]
      if whole < len(same):  # too few for a batch: joined k at a time into rows of the next length
        k = self.lengths[i + 1] // length
        carried = [np.concatenate(same[j:j + k]) for j in range(whole, len(same), k)]
    if len(self.lengths) > 1:  # one length: its batches already come in shuffled order
      groups = [groups[i] for i in rng.permutation(len(groups))]
    return [(np.concatenate(g), length, np.repeat(np.arange(len(g)), [len(p) for p in g])) for length, g in groups]


def packed_lengths(buckets: Sequence[int], chosen: Sequence[int] = ()) -> tuple[int, ...]:
  """The packed rows' lengths: the longest bucket L and `chosen` (config.data.packed_lengths, may be None), or when
  none are chosen L / 4 and L / 2 (those that are multiples of 8). Each divides L and is a multiple of 8, so rows of
  it fold into rows of L with their texts' slots (`input_pipeline.fold_rows`)."""
  longest = int(max(buckets))
  chosen = chosen or [n for n in (longest // 4, longest // 2) if n >= 8 and n % 8 == 0 and longest % n == 0]
  for n in chosen:
    number(n, "config.data.packed_lengths", f"multiples of 8 that divide the longest bucket, {longest}",
           lambda x: 8 <= x <= longest and x == int(x) and x % 8 == 0 and longest % x == 0)
  return tuple(sorted({int(n) for n in chosen} | {longest}))


def packing_for(batch_size: int, lengths: np.ndarray, sizes: Sequence[int], tokens_per_batch: int = 0,
                multiple: int = 1) -> Packing:
  """The packing of texts into rows of `sizes` tokens (`packed_lengths`): R rows of the longest, L, per batch, a
  multiple of `multiple` (the batch shards x micro-batches) with R x L <= `tokens_per_batch`, or (budget 0) the fewest
  rows with R x L >= batch_size texts of the pool's mean length, so a batch holds at least about batch_size texts
  (short texts in small batches round up far: 8 texts of 22 tokens take 2 rows of 128, which hold ~11); a shorter
  length l gets the most rows, a multiple of `multiple`, within R x L tokens."""
  length = max(sizes)
  if tokens_per_batch:
    rows = int(number(tokens_per_batch, "config.data.tokens_per_batch", "an integer >= 0 (0 = train.batch_size "
                      "texts per batch)", lambda x: x >= 0 and x == int(x))) // length // multiple * multiple
    if rows < multiple:
      raise UserError(f"config.data.tokens_per_batch: {tokens_per_batch} tokens cannot hold {multiple} packed rows "
                      f"of {length} tokens (the batch shards (mesh data x fsdp) x config.train.grad_accumulation); "
                      f"expected at least {multiple * length}")
  else:
    mean = float(np.mean(np.minimum(lengths, length))) if len(lengths) else float(length)
    rows = max(math.ceil(batch_size * mean / length / multiple), 1) * multiple
  sizes = tuple(sorted(int(n) for n in sizes))
  return Packing(sizes, tuple(rows * length // n // multiple * multiple for n in sizes))


@dataclasses.dataclass(frozen=True)
class StepBatch:
  """The training batch of one step: its pooled rows (at most `size`; missing rows are padded empty, weight 0), the
  padded batch size, and the padded length (None: make_batch's choice, the smallest bucket that fits the rows);
  packed, the rows of the longest packed length, the length of this batch's packed rows (those of a shorter length
  are folded side by side into rows of the longest: `input_pipeline.make_step_batch`) and each pooled row's packed
  row (its texts in the order of `rows`)."""
  rows: np.ndarray
  size: int
  length: int | None
  places: np.ndarray | None = None


class MixtureOrder:
  """Rows of the training batch at each step, drawn across corpora; a pure function of (seed, step, sizes, p).

  One epoch holds `per_epoch * batch_size` rows (`epoch_examples`, by default the pool's size, cut to whole
  batches). Corpus i contributes exactly `counts[i]` of them (largest-remainder rounding of p_i * rows), namely
  positions counts[i] * e .. counts[i] * (e + 1) - 1 of its own stream of seeded permutations: a small corpus is
  cycled (upsampled), a large one is walked through over several epochs. The epoch's rows are shuffled (seeded by
  [seed, e]), optionally grouped by length (`group_by_length`), and cut into batches; the current epoch is cached.

  With a token budget (`tokens_per_batch` > 0, which needs `lengths` and `buckets`) the epoch's rows are the same, but
  each goes to the smallest bucket that fits it, and `cut_by_bucket` cuts each bucket's rows (in the shuffled order)
  into batches of B_L = `batch_sizes[L]` rows (`bucket_batch_sizes`), padded to exactly L; the epoch's batches are
  then shuffled (seeded) and `group_by_length` is not used. `batch(step)` gives (rows, B_L, L): one shape per bucket.
  Packed (`packing`), the epoch's shuffled rows are packed (`Packing.pack`) into rows of `packing.lengths` tokens,
  the packed rows shuffled (seeded), cut into batches of each length's row count, and the batches shuffled: one
  shape per packed length.
  With a budget or packing, epochs differ slightly in their number of steps; `per_epoch` is epoch 0's (what
  `config.train.epochs` and evaluation once per epoch count), and a step is found by walking the epochs' cumulative
  step counts (cached).
  """

  def __init__(self, corpus_sizes: Sequence[int], probabilities: Sequence[float], batch_size: int, seed: int,
               lengths: np.ndarray | None = None, group_by_length: bool = True, group: int = 16,
               epoch_examples: int | None = None, names: Sequence[str] | None = None,
               buckets: Sequence[int] | None = None, tokens_per_batch: int = 0, multiple: int = 1,
               packing: Packing | None = None):
    self.sizes = _check_sizes(corpus_sizes, names).astype(np.int64)
    p = np.asarray(probabilities, np.float64)
    if p.shape != self.sizes.shape or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
      raise UserError(f"config.sampling: expected {len(self.sizes)} sampling probabilities >= 0 (one per corpus, "
                      f"not all 0), found {list(probabilities)}")
    self.probabilities = p / p.sum()
    self.batch_size = int(number(batch_size, "config.train.batch_size", "an integer >= 1",
                                  lambda x: x >= 1 and x == int(x)))
    total = int(self.sizes.sum()) if epoch_examples is None else epoch_examples
    total = int(number(total, "config.sampling.epoch_examples", "an integer >= 1", lambda x: x >= 1 and x == int(x)))
    self.seed = seed
    self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
    self.lengths = None if lengths is None else np.asarray(lengths)
    if self.lengths is not None and len(self.lengths) != self.sizes.sum():
      raise ValueError(f"lengths: expected {self.sizes.sum()} entries (the pool), found {len(self.lengths)}")
    self.group = group if group_by_length and self.lengths is not None else 0
    self.per_epoch = max(total // self.batch_size, 1)
    self.counts = largest_remainder(self.probabilities, self.per_epoch * self.batch_size)
    self.tokens_per_batch = int(number(tokens_per_batch, "config.data.tokens_per_batch", "an integer >= 0 (0 = off)",
                                        lambda x: x >= 0 and x == int(x)))
    self.buckets = None if buckets is None else tuple(sorted(int(b) for b in buckets))
    self.batch_sizes: dict[int, int] = {}  # {L: B_L} with a token budget
    self.packing = packing
    self._epoch, self._batches, self._batch_info = None, None, None
    if self.tokens_per_batch and packing:
      raise ValueError("a token budget or packing, not both (packing_for turns a budget into packed rows)")
    if (self.tokens_per_batch or packing) and self.lengths is None:
      raise ValueError("a token budget or packing needs the rows' lengths")
    if self.tokens_per_batch:
      if not self.buckets:
        raise ValueError("a token budget needs the length buckets")
      self.batch_sizes = bucket_batch_sizes(self.buckets, self.tokens_per_batch, multiple)
      self._bucket = bucket_of(self.lengths, self.buckets)  # of each pooled row
    if self.varies:
      self.per_epoch = self.epoch_steps(0)
      self._starts = [0, self.per_epoch]  # the first step of each epoch walked so far

  @property
  def varies(self) -> bool:
    """Whether epochs may differ in their number of steps (a token budget or packing)."""
    return bool(self.tokens_per_batch or self.packing)

  def epoch_rows(self, epoch: int) -> np.ndarray:
    """The pooled rows of one epoch, corpus by corpus (unshuffled)."""
    return np.concatenate([o + corpus_stream(int(n), int(c) * epoch, int(c), self.seed, i)
                           for i, (n, c, o) in enumerate(zip(self.sizes, self.counts, self.offsets))])

  def epoch_batches(self, epoch: int) -> tuple[Sequence[np.ndarray], Sequence | None]:
    """The row indices of each batch of one epoch ([per_epoch, batch_size]; with a token budget or packing a list of
    batches) and, with a token budget, each batch's bucket length, packed, each batch's (length, `places`) (else
    None)."""
    rng = np.random.default_rng([self.seed, epoch])
    rows = self.epoch_rows(epoch)
    rng.shuffle(rows)  # in place: what rng.permutation returns, without a second copy of the epoch's rows
    if self.packing:
      batches = self.packing.batches(rows, self.lengths[rows], rng)
      return [members for members, _, _ in batches], [(length, places) for _, length, places in batches]
    if self.tokens_per_batch:
      batches, bucket_ids = cut_by_bucket(rows, self._bucket[rows], list(self.batch_sizes.values()))
      order = rng.permutation(len(batches))
      return [batches[i] for i in order], np.asarray(self.buckets)[bucket_ids[order]]
    if not self.group:
      return rows.reshape(self.per_epoch, self.batch_size), None
    return group_by_length(rows, self.lengths, self.batch_size, self.group, rng), None

  def epoch_steps(self, epoch: int) -> int:
    """The number of batches of one epoch (`per_epoch`; with a token budget, from its rows' bucket counts; packed,
    from its packing, which is kept as the current epoch)."""
    if self.packing:
      self._load(epoch)
      return len(self._batches)
    if not self.tokens_per_batch:
      return self.per_epoch
    counts = np.bincount(self._bucket[self.epoch_rows(epoch)], minlength=len(self.buckets))
    return bucket_steps(counts, list(self.batch_sizes.values()))

  def locate(self, step: int) -> tuple[int, int]:
    """(epoch, offset within it) of `step`; with a token budget or packing, by the epochs' cumulative step counts
    (cached)."""
    if not self.varies:
      return divmod(step, self.per_epoch)
    while self._starts[-1] <= step:
      self._starts.append(self._starts[-1] + self.epoch_steps(len(self._starts) - 1))
    epoch = bisect.bisect_right(self._starts, step) - 1
    return epoch, step - self._starts[epoch]

  def _load(self, epoch: int) -> None:
    """Makes `epoch` the cached one."""
    if epoch != self._epoch:
      self._batches, self._batch_info = self.epoch_batches(epoch)
      self._epoch = epoch

  def indices(self, step: int) -> np.ndarray:
    """The pooled rows of the batch at `step`."""
    epoch, offset = self.locate(step)
    self._load(epoch)
    return self._batches[offset]

  def batch(self, step: int) -> StepBatch:
    """The rows, padded batch size and padded length of the batch at `step`: (B_L, L) with a token budget, else
    (`batch_size`, None: the smallest bucket that fits); packed, (R, the packed rows' length) and each row's place."""
    rows = self.indices(step)  # fills the epoch's cache (tests/runs.py patches it to simulate a crash at a step)
    if self.packing:
      length, places = self._batch_info[self.locate(step)[1]]
      return StepBatch(rows, self.packing.rows[-1], length, places)
    if not self.tokens_per_batch:
      return StepBatch(rows, self.batch_size, None)
    length = int(self._batch_info[self.locate(step)[1]])
    return StepBatch(rows, self.batch_sizes[length], length)


def mixture_order(config, parts: dict, lengths: np.ndarray, multiple: int = 1) -> MixtureOrder:
  """The step-indexed batch order over the corpora (`parts`: examples by the tasks each corpus labels), with
  `config.sampling`'s strategy and epoch definition, packed (`config.data.packing`) or with
  `config.data.tokens_per_batch`'s budget (batch sizes are multiples of `multiple`: the batch shards x
  train.grad_accumulation)."""
  sc, tc = config.sampling, config.train
  names, sizes = ["+".join(tasks) for tasks in parts], [len(p) for p in parts.values()]  # names for messages
  if sum(sizes) < tc.batch_size:
    raise UserError(f"config.train.batch_size: {tc.batch_size} is larger than the {sum(sizes)} training examples")
  p = corpus_probabilities(sizes, sc.strategy, sc.temperature, list(sc.weights) or None, names)
  epoch_examples = None
  if sc.epoch_task:  # a trained task, as schema.validate checked
    i = next(i for i, tasks in enumerate(parts) if sc.epoch_task in tasks)
    epoch_examples = epoch_examples_for(sizes[i], p[i], sc.epoch_task)
  packing, budget = None, config.data.tokens_per_batch
  if config.data.packing:
    row_lengths = packed_lengths(config.data.length_buckets, config.data.packed_lengths)
    packing, budget = packing_for(tc.batch_size, lengths, row_lengths, budget, multiple), 0
  return MixtureOrder(sizes, p, tc.batch_size, config.seed, lengths, config.data.group_by_length,
                      epoch_examples=epoch_examples, names=names, buckets=config.data.length_buckets,
                      tokens_per_batch=budget, multiple=multiple, packing=packing)
