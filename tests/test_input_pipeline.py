"""Step-indexed batches, buckets and padding."""

import numpy as np
import pytest

from mtl_jax.input_pipeline import Encoded, TrainOrder, bucket_length, eval_indices, make_batch


@pytest.mark.parametrize("grouped", [False, True])
def test_train_batches_are_a_function_of_seed_and_step(grouped):
  lengths = np.random.default_rng(0).integers(3, 100, 103)
  order = TrainOrder(lengths, 10, seed=1, group_by_length=grouped, group=4)
  a = [order.indices(s) for s in range(25)]
  fresh = [TrainOrder(lengths, 10, seed=1, group_by_length=grouped, group=4).indices(s) for s in reversed(range(25))]
  assert all(np.array_equal(x, y) for x, y in zip(a, reversed(fresh)))  # no hidden state: any step, any order
  epoch0 = np.concatenate(a[:10])
  assert len(set(epoch0.tolist())) == 100  # one epoch: no repeats, last partial batch dropped
  assert not np.array_equal(a[0], a[10])  # the next epoch is reshuffled
  assert not np.array_equal(a[0], TrainOrder(lengths, 10, seed=2, group_by_length=grouped).indices(0))


def test_grouping_by_length_reduces_padding():
  lengths = np.random.default_rng(0).integers(3, 100, 2000)
  padded = lambda grouped: np.mean([lengths[TrainOrder(lengths, 16, 0, grouped).indices(s)].max() for s in range(120)])
  real = lengths.mean()
  assert real / padded(True) > 0.85 > 0.6 > real / padded(False)


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


def test_eval_indices_cover_every_row_once_shortest_first():
  lengths = np.random.default_rng(0).integers(1, 50, 23)
  batches = eval_indices(lengths, 8)
  assert [len(b) for b in batches] == [8, 8, 7]
  np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(23))
  assert np.all(np.diff(lengths[np.concatenate(batches)]) >= 0)
