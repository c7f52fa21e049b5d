"""Buckets, padding, and windows of long sentences."""

import numpy as np

from mtl_jax.input_pipeline import Encoded, bucket_length, eval_indices, make_batch


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


def test_eval_indices_cover_every_row_once_shortest_first():
  lengths = np.random.default_rng(0).integers(1, 50, 23)
  batches = eval_indices(lengths, 8)
  assert [len(b) for b in batches] == [8, 8, 7]
  np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(23))
  assert np.all(np.diff(lengths[np.concatenate(batches)]) >= 0)
