"""mtl_jax.predict's length buckets (prediction end to end is in test_train.py)."""

from hypothesis import given
from hypothesis import strategies as st

from mtl_jax.input_pipeline import bucket_length
from mtl_jax.predict import prediction_buckets


@given(st.lists(st.integers(3, 512), min_size=1, max_size=6, unique=True), st.data())
def test_prediction_buckets_keep_trainings_and_pad_little(length_buckets, data):
  buckets = prediction_buckets(length_buckets)
  assert list(buckets) == sorted(set(buckets)) and set(length_buckets) <= set(buckets)
  assert max(buckets) == max(length_buckets)  # nothing longer than training saw
  length = data.draw(st.integers(1, max(length_buckets)))
  padded = bucket_length(length, buckets)
  assert padded >= length and padded <= bucket_length(length, length_buckets)
  assert padded - length < (4 if length <= 64 else 8) or padded in length_buckets
