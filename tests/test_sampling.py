"""Corpus probabilities, downsampling and the step-indexed mixture of corpora, with fixed-size batches or token
budgets (batches of B_L rows per bucket length L)."""

import math
import re

import ml_collections
import numpy as np
import pytest
from runs import load_config

from mtl_jax.errors import UserError
from mtl_jax.sampling import (
  MIN_FILL,
  MixtureOrder,
  Packing,
  bucket_batch_sizes,
  bucket_steps,
  corpus_probabilities,
  corpus_stream,
  cut_by_bucket,
  downsample,
  epoch_examples_for,
  largest_remainder,
  packed_lengths,
  packing_for,
)
from mtl_jax.schema import validate

FINE = (16, 24, 32, 40, 48, 64, 80, 96, 128)


def corpus_of(rows: np.ndarray, sizes) -> np.ndarray:
  """Which corpus each pooled row belongs to."""
  return np.searchsorted(np.cumsum(sizes), rows, side="right")


def test_probabilities_for_each_strategy():
  sizes = [100, 10000]
  np.testing.assert_allclose(corpus_probabilities(sizes, "proportional"), [100 / 10100, 10000 / 10100])
  np.testing.assert_allclose(corpus_probabilities(sizes, "temperature", 2.0), [10 / 110, 100 / 110])  # sqrt
  proportional = corpus_probabilities(sizes, "proportional")
  np.testing.assert_allclose(corpus_probabilities(sizes, "temperature", 1.0), proportional)
  np.testing.assert_allclose(corpus_probabilities(sizes, "temperature", math.inf), [0.5, 0.5])
  np.testing.assert_allclose(corpus_probabilities(sizes, "temperature", 1e6), [0.5, 0.5], atol=1e-5)
  np.testing.assert_allclose(corpus_probabilities([3, 5, 7], "uniform"), [1 / 3] * 3)
  np.testing.assert_allclose(corpus_probabilities([3, 5, 7], "explicit", weights=[2, 0, 6]), [0.25, 0, 0.75])
  three = np.array([50, 2000, 120000], float)
  root = three ** (1 / 3)
  np.testing.assert_allclose(corpus_probabilities(three, "temperature", 3.0), root / root.sum())
  np.testing.assert_allclose(corpus_probabilities([10 ** 9, 1], "temperature", 0.01), [1, 0])  # no overflow


def two_corpus_config(**sampling):
  """A config of two tasks with a corpus each (not read: schema.validate checks the config alone)."""
  config = load_config()
  config.data.train = ""
  config.data.label_order = ()
  config.tasks = ml_collections.ConfigDict({
      name: dict(kind="classification", data=dict(format="csv", train=f"{name}.csv", label_column="label"))
      for name in ("pos", "chunk")})
  config.sampling.update(sampling)
  return config


@pytest.mark.parametrize("sampling, field", [
  ({"strategy": "temperature", "temperature": 0}, "config.sampling.temperature: expected a number > 0, found 0"),
  ({"strategy": "temperature", "temperature": -1.0}, "config.sampling.temperature"),
  ({"strategy": "temperature", "temperature": math.nan}, "config.sampling.temperature"),
  ({"strategy": "mixed"}, "config.sampling.strategy"),
  ({"strategy": "explicit"}, "config.sampling.weights"),
  ({"strategy": "explicit", "weights": (1.0,)}, "config.sampling.weights: expected 2 weights"),
  ({"strategy": "explicit", "weights": (1.0, -1.0)}, "config.sampling.weights[1]"),
  ({"strategy": "explicit", "weights": (0, 0)}, "config.sampling.weights"),
  ({"strategy": "explicit", "weights": (1, math.inf)}, "config.sampling.weights[1]"),
  ({"strategy": "uniform", "weights": (1, 2)}, "config.sampling.weights"),
  ({"epoch_task": "ner"}, "config.sampling.epoch_task: unknown task 'ner'"),
])
def test_invalid_sampling_config_names_the_field(sampling, field):
  with pytest.raises(UserError, match="^" + re.escape(field)):
    validate(two_corpus_config(**sampling))


@pytest.mark.parametrize("args, kwargs, field", [
  (([10, 0], "uniform"), {"names": ["pos", "chunk"]}, "corpus 1 ('chunk')"),
  (([], "uniform"), {}, "config.sampling"),
])
def test_invalid_corpus_sizes_name_the_corpus(args, kwargs, field):
  with pytest.raises(UserError, match="^" + re.escape(field)):
    corpus_probabilities(*args, **kwargs)


def test_largest_remainder_is_exact():
  p = corpus_probabilities([100, 10000, 37], "temperature", 2.0)
  for total in (1, 7, 64, 1000, 12345):
    counts = largest_remainder(p, total)
    assert counts.sum() == total and np.all(np.abs(counts - p * total) < 1)


def test_one_epoch_has_exact_counts():
  sizes = [100, 10000, 37]
  p = corpus_probabilities(sizes, "temperature", 2.0)
  order = MixtureOrder(sizes, p, batch_size=32, seed=0, epoch_examples=3200)
  assert order.per_epoch == 100
  rows = np.concatenate([order.indices(s) for s in range(order.per_epoch)])
  counts = np.bincount(corpus_of(rows, sizes), minlength=3)
  assert np.array_equal(counts, order.counts) and counts.sum() == 3200
  assert np.all(np.abs(counts - p * 3200) < 1)
  assert rows.min() >= 0 and rows.max() < sum(sizes)


def test_small_batches_mix_corpora_in_proportion():
  sizes = [300, 1000, 5000]
  p = corpus_probabilities(sizes, "temperature", 2.0)
  order = MixtureOrder(sizes, p, batch_size=4, seed=3)
  batches = [order.indices(s) for s in range(1000)]
  share = np.bincount(corpus_of(np.concatenate(batches), sizes), minlength=3) / 4000
  np.testing.assert_allclose(share, p, atol=0.02)
  assert sum(len(set(corpus_of(b, sizes))) > 1 for b in batches) > 500  # batches are mixtures, not runs


def test_uniform_upsamples_a_small_corpus():
  sizes = [10, 1000]
  order = MixtureOrder(sizes, corpus_probabilities(sizes, "uniform"), batch_size=10, seed=0)
  rows = np.concatenate([order.indices(s) for s in range(order.per_epoch)])
  small = rows[rows < 10]
  assert len(small) == 505 and set(small.tolist()) == set(range(10))  # ~50 passes over the small corpus
  big = rows[rows >= 10]
  assert len(big) == 505 == len(set(big.tolist()))  # the big corpus is not repeated within the epoch
  stream = corpus_stream(10, 0, 505, seed=0, corpus=0)
  for r in range(50):  # every row seen once before any repeats, each pass in a new order
    assert sorted(stream[10 * r:10 * r + 10]) == list(range(10))
  assert not np.array_equal(stream[:10], stream[10:20])


def test_a_large_corpus_is_walked_through_across_epochs():
  sizes = [50, 1000]
  order = MixtureOrder(sizes, [0.5, 0.5], batch_size=10, seed=1, epoch_examples=100)
  rows = np.concatenate([order.indices(s) for s in range(10 * order.per_epoch)])
  big = rows[rows >= 50]
  assert len(big) == 500 == len(set(big.tolist()))  # no big-corpus row repeats until all have been seen


@pytest.mark.parametrize("grouped", [False, True])
def test_batches_are_a_function_of_seed_and_step(grouped):
  sizes = [13, 200, 57]
  lengths = np.random.default_rng(0).integers(3, 100, sum(sizes))
  make = lambda seed: MixtureOrder(sizes, corpus_probabilities(sizes, "temperature", 2.0), 8, seed, lengths=lengths,
                                   group_by_length=grouped, group=4)
  order = make(1)
  a = [order.indices(s) for s in range(100)]
  assert order.per_epoch == 33
  fresh = [make(1).indices(s) for s in reversed(range(100))]
  assert all(np.array_equal(x, y) for x, y in zip(a, reversed(fresh)))
  shared = make(1)
  steps = np.random.default_rng(5).permutation(100)
  assert all(np.array_equal(shared.indices(s), a[s]) for s in steps)  # any evaluation order, one object
  assert np.array_equal(make(1).indices(1000), make(1).indices(1000))  # a distant step directly
  assert not np.array_equal(a[0], a[order.per_epoch])  # the next epoch is different
  assert not np.array_equal(a[0], make(2).indices(0))


def test_grouping_by_length_reduces_padding():
  sizes = [500, 1500]
  lengths = np.random.default_rng(0).integers(3, 100, 2000)
  padded = lambda grouped: np.mean([lengths[MixtureOrder(sizes, [0.5, 0.5], 16, 0, lengths, grouped).indices(s)].max()
                                    for s in range(120)])
  assert lengths.mean() / padded(True) > 0.85
  assert lengths.mean() / padded(False) < 0.6


def test_epoch_definition():
  sizes = [100, 10000]
  p = corpus_probabilities(sizes, "temperature", 2.0)
  assert MixtureOrder(sizes, p, 32, 0).per_epoch == 10100 // 32
  examples = epoch_examples_for(100, p[0])
  assert examples == 1100
  order = MixtureOrder(sizes, p, 32, 0, epoch_examples=examples)
  assert order.per_epoch == 1100 // 32 and order.counts[0] == round(p[0] * order.per_epoch * 32)  # ~one pass of 100
  assert MixtureOrder(sizes, p, 32, 0, epoch_examples=5).per_epoch == 1  # at least one step
  with pytest.raises(UserError, match="^config.sampling.epoch_task"):
    epoch_examples_for(100, 0.0, "pos")


def test_invalid_order_inputs_name_the_field():
  with pytest.raises(UserError, match="^config.sampling.epoch_examples"):
    MixtureOrder([10, 20], [0.5, 0.5], 4, 0, epoch_examples=0)
  with pytest.raises(UserError, match="^config.train.batch_size"):
    MixtureOrder([10, 20], [0.5, 0.5], 0, 0)
  with pytest.raises(UserError, match="^config.sampling"):
    MixtureOrder([10, 20], [0.5, 0.3, 0.2], 4, 0)
  with pytest.raises(UserError, match="^corpus 0 \\('pos'\\)"):
    MixtureOrder([0, 20], [0.5, 0.5], 4, 0, names=["pos", "topic"])


def test_downsample():
  a = downsample(1000, 0.25, seed=0)
  assert len(a) == 250 and np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 1000
  assert np.array_equal(a, downsample(1000, 0.25, seed=0))
  assert not np.array_equal(a, downsample(1000, 0.25, seed=1))
  assert np.array_equal(downsample(7, 1.0, seed=3), np.arange(7))
  assert len(downsample(10, 0.01, seed=0)) == 1  # at least one example
  assert len(downsample(10, 0.35, seed=0)) == 4  # round half up
  for bad in (0, -0.5, 1.5, math.nan, "0.5"):
    config = two_corpus_config()
    config.tasks.pos.data.downsample = bad
    with pytest.raises(UserError, match="^config.tasks.pos.data.downsample: expected a number in \\(0, 1\\]"):
      validate(config)


# ---------------------------------------------------------------------------------------------------------------
# Token budgets.

def text_lengths(n: int, seed: int = 0) -> np.ndarray:
  """Token counts shaped like short real texts (median ~22, a long tail), within 3 .. 128."""
  return np.clip(np.random.default_rng(seed).lognormal(3.1, 0.6, n).astype(int), 3, 128)


def budget_order(sizes=(700, 1300, 250), budget=1024, multiple=2, seed=0, buckets=FINE, **kwargs) -> MixtureOrder:
  p = corpus_probabilities(list(sizes), "temperature", 2.0)
  return MixtureOrder(list(sizes), p, 32, seed, text_lengths(sum(sizes)), buckets=buckets, tokens_per_batch=budget,
                      multiple=multiple, **kwargs)


def epoch_starts(order: MixtureOrder, epochs: int) -> list[int]:
  return np.cumsum([0] + [order.epoch_steps(e) for e in range(epochs)]).tolist()


def padded_length(length: int, buckets) -> int:
  """The smallest bucket >= `length` (the largest for longer ones), by a plain scan."""
  return min([b for b in buckets if b >= length], default=max(buckets))


def test_bucket_batch_sizes_are_the_largest_multiples_within_the_budget():
  for budget, m in ((1024, 1), (1024, 2), (1030, 8), (4096, 3), (128, 1)):
    sizes = bucket_batch_sizes(FINE, budget, m)
    assert list(sizes) == sorted(FINE)
    for length, size in sizes.items():  # brute force: every multiple of m that fits, the largest of them
      assert size == max(b for b in range(m, budget + 1, m) if b * length <= budget), (budget, m, length)
  with pytest.raises(UserError, match="^config.data.tokens_per_batch: 1000 .* expected at least 1024"):
    bucket_batch_sizes(FINE, 1000, 8)
  with pytest.raises(UserError, match="^config.data.tokens_per_batch: expected an integer >= 1"):
    bucket_batch_sizes(FINE, 0, 1)


def test_cut_by_bucket_moves_remainders_up():
  rows, buckets = np.arange(10, 17), np.array([0, 1, 0, 0, 1, 0, 1])  # bucket 0: 10 12 13 15, bucket 1: 11 14 16
  cases = {(2, 3): ([[10, 12], [13, 15], [11, 14, 16]], [0, 0, 1]),
           (3, 2): ([[10, 12, 13], [15, 11], [14, 16]], [0, 1, 1]),  # 15 moves up, ahead of bucket 1's rows
           (3, 3): ([[10, 12, 13], [15, 11, 14], [16]], [0, 1, 1]),  # the largest bucket's leftover: a short batch
           (5, 8): ([[10, 12, 13, 15, 11, 14, 16]], [1])}
  for sizes, (expected, ids) in cases.items():
    batches, bucket_ids = cut_by_bucket(rows, buckets, sizes)
    assert [b.tolist() for b in batches] == expected and bucket_ids.tolist() == ids, sizes
    assert bucket_steps(np.bincount(buckets), sizes) == len(expected)
  rng = np.random.default_rng(0)
  for _ in range(50):  # the count from bucket counts alone agrees with the cut
    sizes, ids = rng.integers(1, 9, 4).tolist(), rng.integers(0, 4, rng.integers(1, 60))
    batches, _ = cut_by_bucket(np.arange(len(ids)), ids, sizes)
    assert bucket_steps(np.bincount(ids, minlength=4), sizes) == len(batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(ids)))


def test_a_token_budget_epoch_holds_the_same_rows_each_once():
  """Epoch e's budget batches hold exactly the rows of epoch e of fixed-size batches (same counts, same streams)."""
  sizes = (90, 1300, 250)  # the small corpus is upsampled: its rows repeat within an epoch, as without a budget
  order = budget_order(sizes)
  fixed = MixtureOrder(list(sizes), order.probabilities, 32, 0)
  starts = epoch_starts(order, 4)
  assert order.per_epoch == starts[1] and len(set(np.diff(starts))) > 1  # epochs differ slightly in length
  for e in range(4):
    rows = np.concatenate([order.indices(s) for s in range(starts[e], starts[e + 1])])
    expected = np.concatenate([fixed.indices(s) for s in range(e * fixed.per_epoch, (e + 1) * fixed.per_epoch)])
    assert np.array_equal(np.sort(rows), np.sort(expected)), e
    assert np.array_equal(np.sort(rows), np.sort(order.epoch_rows(e)))


@pytest.mark.parametrize("budget, multiple", [(1024, 1), (1024, 4), (2000, 6)])
def test_token_budget_batches_fit_their_bucket_and_budget(budget, multiple):
  order = budget_order(budget=budget, multiple=multiple)
  starts = epoch_starts(order, 3)
  shapes = set()
  for e in range(3):
    short = []
    for s in range(starts[e], starts[e + 1]):
      b = order.batch(s)
      assert np.array_equal(b.rows, order.indices(s))
      assert b.length in FINE and order.lengths[b.rows].max() <= b.length  # the rows fit: nothing is cut
      assert multiple <= b.size and b.size % multiple == 0 and b.size * b.length <= budget
      assert (b.size + multiple) * b.length > budget  # the largest such multiple
      assert 1 <= len(b.rows) <= b.size
      if len(b.rows) < b.size:
        short.append(b.length)
      shapes.add((b.size, b.length))
    assert short in ([], [max(FINE)])  # at most one short batch an epoch: the largest bucket's leftover
    epoch_lengths = [order.batch(s).length for s in range(starts[e], starts[e + 1])]
    assert epoch_lengths != sorted(epoch_lengths)  # the epoch's batches are shuffled, not bucket by bucket
  lengths = [length for _, length in shapes]
  assert len(lengths) == len(set(lengths)) <= len(FINE)  # one shape per bucket


def test_token_budget_rows_go_to_their_own_bucket_except_a_few_moved_up():
  order = budget_order()
  rows_moved, rows_all = 0, 0
  for s in range(order.per_epoch):
    b = order.batch(s)
    own = np.array([padded_length(n, FINE) for n in order.lengths[b.rows]])
    rows_moved, rows_all = rows_moved + int((own < b.length).sum()), rows_all + len(b.rows)
  assert rows_moved < sum(order.batch_sizes.values())  # fewer than one batch per bucket moved up


@pytest.mark.parametrize("budget", [512, 1536])
def test_token_budget_batches_are_a_function_of_seed_and_step(budget):
  make = lambda seed=1: budget_order(budget=budget, seed=seed)
  order = make()
  starts = epoch_starts(order, 5)
  walk = [order.batch(s) for s in range(starts[-1])]
  rng = np.random.default_rng(2)
  for s in rng.choice(starts[-1], 12, replace=False):  # a fresh order at a step of a later epoch, directly
    fresh = make().batch(int(s))
    assert np.array_equal(fresh.rows, walk[s].rows) and (fresh.size, fresh.length) == (walk[s].size, walk[s].length)
  shared = make()
  for s in rng.permutation(starts[-1]):  # any evaluation order, one object
    assert np.array_equal(shared.indices(s), walk[s].rows) and shared.batch(s).length == walk[s].length
  assert not np.array_equal(walk[0].rows, make(2).indices(0))


def real_fraction(order: MixtureOrder, steps: int, buckets) -> float:
  """Real tokens over padded positions of the first `steps` batches; a batch of fixed rows is padded to the bucket
  of its longest row."""
  real = padded = 0
  for s in range(steps):
    b = order.batch(s)
    length = b.length or padded_length(order.lengths[b.rows].max(), buckets)
    real, padded = real + order.lengths[b.rows].sum(), padded + b.size * length
  return real / padded


def test_token_budgets_pad_less_than_fixed_rows():
  sizes = (3000, 5000)
  lengths = text_lengths(sum(sizes), seed=3)
  coarse = (32, 48, 64, 96, 128)
  fixed = MixtureOrder(list(sizes), [0.5, 0.5], 32, 0, lengths)  # grouped by length, as the configs' default
  for buckets in (coarse, FINE):
    budget = MixtureOrder(list(sizes), [0.5, 0.5], 32, 0, lengths, buckets=buckets, tokens_per_batch=1024)
    ceiling = lengths.sum() / sum(padded_length(n, buckets) for n in lengths)  # every row in its own bucket
    steps = 3 * budget.per_epoch
    assert real_fraction(budget, steps, buckets) >= real_fraction(fixed, 3 * fixed.per_epoch, buckets)
    assert real_fraction(budget, steps, buckets) > ceiling - 0.03
  assert real_fraction(budget, steps, FINE) > 0.8


def test_invalid_token_budgets():
  with pytest.raises(UserError, match="^config.data.tokens_per_batch: 200 tokens cannot hold 2 examples"):
    budget_order(budget=200)
  with pytest.raises(UserError, match="^config.data.tokens_per_batch: expected an integer >= 0"):
    budget_order(budget=-1)
  with pytest.raises(ValueError, match="lengths"):
    MixtureOrder([10, 20], [0.5, 0.5], 4, 0, buckets=FINE, tokens_per_batch=1024)
  for bad in (-1, -512):
    with pytest.raises(UserError, match="^config.data.tokens_per_batch: expected an integer >= 0"):
      validate(load_config(**{"data.tokens_per_batch": bad}))
  fixed = MixtureOrder([10, 20], [0.5, 0.5], 4, 0)
  assert fixed.batch(3).size == 4 and fixed.batch(3).length is None and fixed.locate(17) == (2, 3)


# ---------------------------------------------------------------------------------------------------------------
# Packing.

def packed_order(sizes=(700, 1300, 250), seed=0, rows=4, lengths=(128,), **kwargs) -> MixtureOrder:
  p = corpus_probabilities(list(sizes), "temperature", 2.0)
  packing = Packing(tuple(lengths), tuple(rows * max(lengths) // n for n in lengths))
  return MixtureOrder(list(sizes), p, 32, seed, text_lengths(sum(sizes)), packing=packing, **kwargs)


@pytest.mark.parametrize("sizes", [(128,), (64,), (32, 64, 128), (40, 128)])
def test_packing_puts_every_row_in_one_packed_row_within_its_length_and_slots(sizes):
  lengths = np.minimum(text_lengths(3000, seed=1), max(sizes))
  rows = np.random.default_rng(0).permutation(3000)
  packs = Packing(sizes, (1,) * len(sizes)).pack(rows, lengths[rows])
  assert sorted(np.concatenate([p for _, p in packs]).tolist()) == list(range(3000))
  for size, p in packs:
    assert size in sizes and 0 < len(p) <= size // 8 and lengths[p].sum() <= size
    assert size == max(sizes) or lengths[p].sum() >= MIN_FILL * size  # shorter rows are nearly full
  # first-fit decreasing within each chunk: the rows fill close to the lower bound of sum(lengths)
  assert sum(size for size, _ in packs) <= lengths.sum() * 1.04 + 3 * max(sizes)


@pytest.mark.parametrize("lengths", [(128,), (32, 64, 128)])
def test_a_packed_epoch_holds_the_same_rows_each_once_in_batches_of_each_lengths_rows(lengths):
  order = packed_order(lengths=lengths)
  plain = MixtureOrder([700, 1300, 250], corpus_probabilities([700, 1300, 250], "temperature", 2.0), 32, 0)
  for epoch, start in enumerate(np.cumsum([0] + [order.epoch_steps(e) for e in range(3)])[:3]):
    batches = [order.batch(int(start) + s) for s in range(order.epoch_steps(epoch))]
    assert sorted(np.concatenate([b.rows for b in batches]).tolist()) == sorted(plain.epoch_rows(epoch).tolist())
    for b in batches:  # 4 rows of 128, each holding 128 / length packed rows side by side
      packed_rows = 4 * 128 // b.length
      assert b.length in lengths and b.size == 4 and len(b.places) == len(b.rows)
      assert b.places.tolist() == sorted(b.places.tolist()) and b.places.max() < packed_rows  # a row's texts together
      for r in range(packed_rows):
        mine = b.rows[b.places == r]
        assert order.lengths[mine].sum() <= b.length and len(mine) <= b.length // 8
    short = [b for b in batches if len(set(b.places.tolist())) < 4 * 128 // b.length]
    assert len(short) <= 1 and all(b.length == 128 for b in short)  # only the longest length's last batch
    assert {b.length for b in batches} == set(lengths)


def test_packed_batches_are_a_function_of_seed_and_step():
  steps = [0, 5, 2 * packed_order().per_epoch + 3, 40]
  for lengths in ((128,), (32, 64, 128)):
    a, b = packed_order(lengths=lengths), packed_order(lengths=lengths)
    expected = {s: a.batch(s) for s in steps}
    for s in reversed(steps):  # a resumed run asks for a late step first
      got = b.batch(s)
      assert got.rows.tolist() == expected[s].rows.tolist() and got.places.tolist() == expected[s].places.tolist()
      assert got.length == expected[s].length
    assert packed_order(seed=1, lengths=lengths).batch(0).rows.tolist() != expected[0].rows.tolist()


@pytest.mark.parametrize("lengths", [(128,), (32, 64, 128)])
def test_packing_nearly_removes_padding(lengths):
  order = packed_order(sizes=(3000, 5000), lengths=lengths)
  batches = [order.batch(s) for s in range(order.per_epoch)]
  real = sum(order.lengths[b.rows].sum() for b in batches) / sum(b.size * 128 for b in batches)
  assert real > 0.95


def test_short_packed_rows_attend_over_fewer_tokens():
  """The point of several packed lengths: most texts are short, so most batches' rows are short."""
  order, single = packed_order(sizes=(3000, 5000), lengths=(32, 64, 128)), packed_order(sizes=(3000, 5000))
  # per head and layer: b.size rows of 128, each 128 / length blocks of length^2
  attended = lambda o: sum(b.size * 128 * b.length for b in map(o.batch, range(o.per_epoch)))
  assert attended(order) < 0.6 * attended(single)


def test_packed_lengths_are_the_longest_bucket_and_those_chosen_or_its_half_and_quarter():
  assert packed_lengths((32, 48, 64, 96, 128)) == (32, 64, 128) and packed_lengths((32, 128), None) == (32, 64, 128)
  assert packed_lengths((96,)) == (24, 48, 96) and packed_lengths((16,)) == (8, 16) and packed_lengths((8, 20)) == (20,)
  assert packed_lengths((32, 128), (64, 32, 64)) == (32, 64, 128) and packed_lengths((32, 128), (128,)) == (128,)
  for bad in ((4,), (256,), (40.5,), (48,), (12,)):
    with pytest.raises(UserError, match="^config.data.packed_lengths: expected multiples of 8 that divide the longest"):
      validate(load_config(**{"data.packed_lengths": bad}))


def test_packing_for_makes_batches_of_at_least_batch_size_texts():
  lengths = text_lengths(5000, seed=2)
  for batch_size, multiple in ((8, 1), (32, 1), (32, 4), (4, 2)):
    packing = packing_for(batch_size, lengths, (32, 64, 128), 0, multiple)
    rows = packing.rows[-1]
    assert all(r % multiple == 0 and r >= multiple for r in packing.rows)
    assert all(r * n <= rows * 128 for r, n in zip(packing.rows, packing.lengths))  # the same tokens at most
    texts = lambda rows: rows * 128 / lengths.mean()  # a batch's texts on average
    assert texts(rows) >= batch_size and (rows == multiple or texts(rows - multiple) < batch_size)
  assert packing_for(32, lengths, (64, 128), 1000, 2).rows == (12, 6)  # a budget: the most rows of 128 within it
  with pytest.raises(UserError, match="^config.data.tokens_per_batch: 200 tokens cannot hold 2 packed rows of 128"):
    packing_for(32, lengths, (128,), 200, 2)

