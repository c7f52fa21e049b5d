"""Corpus probabilities, downsampling and the step-indexed mixture of corpora."""

import math
import re

import numpy as np
import pytest

from mtl_jax.errors import UserError
from mtl_jax.sampling import (
  MixtureOrder,
  corpus_probabilities,
  corpus_stream,
  downsample,
  epoch_examples_for,
  largest_remainder,
)


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


@pytest.mark.parametrize("args, kwargs, field", [
  (([10, 20], "temperature", 0), {}, "config.sampling.temperature: expected a number > 0, found 0"),
  (([10, 20], "temperature", -1.0), {}, "config.sampling.temperature"),
  (([10, 20], "temperature", math.nan), {}, "config.sampling.temperature"),
  (([10, 20], "temperature", "2"), {}, "config.sampling.temperature"),
  (([10, 20], "mixed"), {}, "config.sampling.strategy"),
  (([10, 20], "explicit"), {}, "config.sampling.weights"),
  (([10, 20], "explicit"), {"weights": [1.0]}, "config.sampling.weights"),
  (([10, 20], "explicit"), {"weights": [1.0, -1.0]}, "config.sampling.weights[1]"),
  (([10, 20], "explicit"), {"weights": [0, 0]}, "config.sampling.weights"),
  (([10, 20], "explicit"), {"weights": [1, math.inf]}, "config.sampling.weights[1]"),
  (([10, 20], "uniform"), {"weights": [1, 2]}, "config.sampling.weights"),
  (([10, 0], "uniform"), {"names": ["pos", "chunk"]}, "corpus 1 ('chunk')"),
  (([], "uniform"), {}, "config.sampling"),
])
def test_invalid_probability_inputs_name_the_field(args, kwargs, field):
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
    with pytest.raises(UserError, match="^config.sampling.fraction: expected a number in \\(0, 1\\]"):
      downsample(10, bad, seed=0)
