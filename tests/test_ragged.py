"""Ragged rows against plain lists of numpy arrays (the reference): indexing, lengths, take, compact, concat."""

import numpy as np

from mtl_jax.ragged import Ragged


def rows(seed: int, n: int, trailing=()):
  rng = np.random.default_rng(seed)
  return [rng.integers(0, 100, (int(k), *trailing)).astype(np.int32) for k in rng.integers(0, 7, n)]


def same(ragged: Ragged, reference: list) -> None:
  assert len(ragged) == len(reference)
  for got, want in zip(ragged, reference):
    np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(ragged.lengths(), [len(r) for r in reference])


def test_rows_take_and_compact_match_the_list():
  reference = rows(0, 40, (3,))
  ragged = Ragged.from_rows(reference, np.int32, (3,))
  same(ragged, reference)
  idx = np.array([5, 0, 39, 5, 17])
  picked = ragged.take(idx)
  same(picked, [reference[i] for i in idx])
  again = picked.take(np.array([4, 1]))  # an index of an index
  same(again, [reference[17], reference[0]])
  values, offsets = again.compact()
  same(Ragged(values, offsets), [reference[17], reference[0]])
  assert picked.values is ragged.values  # take copies nothing


def test_concat_of_picked_parts_and_filled_rows():
  a, b = rows(1, 10), rows(2, 7)
  parts = [Ragged.from_rows(a).take(np.array([9, 2, 2])), Ragged.from_rows(b), Ragged.filled(np.array([3, 0]), -1)]
  same(Ragged.concat(parts), [a[9], a[2], a[2], *b, np.full(3, -1), np.zeros(0)])
  one = Ragged.from_rows(a)
  assert Ragged.concat([one]) is one
  same(Ragged.from_rows([]), [])
