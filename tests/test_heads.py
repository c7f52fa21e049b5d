"""Grouped head and pooling: shapes, the split by layout, and masked mean pooling against numpy."""

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax import heads


def test_grouped_head_shapes_follow_layout(layout):
  params = heads.init_grouped(jax.random.key(0), 16, layout.total("classification"))
  assert params["kernel"].shape == (16, 9) and params["bias"].shape == (9,)
  logits = heads.apply_grouped(params, jnp.ones((5, 16)))
  assert logits.shape == (5, 9) and logits.dtype == jnp.float32
  groups = heads.split_groups(logits, layout, "classification")
  assert {t: g.shape for t, g in groups.items()} == {0: (5, 3), 1: (5, 2), 2: (5, 4)}


def test_split_groups_are_consecutive_slices(layout):
  logits = jnp.arange(18.0).reshape(2, 9)
  groups = heads.split_groups(logits, layout, "classification")
  np.testing.assert_array_equal(np.concatenate(list(groups.values()), axis=1), logits)
  np.testing.assert_array_equal(groups[1], logits[:, 3:5])


def test_mean_pooling_ignores_padding():
  rng = np.random.default_rng(0)
  hidden = rng.normal(size=(3, 6, 4)).astype(np.float32)
  mask = np.array([[1, 1, 1, 0, 0, 0], [1] * 6, [1, 0, 0, 0, 0, 0]])
  expected = np.stack([hidden[i, mask[i] == 1].mean(0) for i in range(3)])
  np.testing.assert_allclose(heads.pool(jnp.asarray(hidden), jnp.asarray(mask), "mean"), expected, rtol=1e-6)
  np.testing.assert_array_equal(heads.pool(jnp.asarray(hidden), jnp.asarray(mask), "cls"), hidden[:, 0])


def test_packed_pooling_gives_each_text_its_own_features():
  """Rows holding several texts (mask: each token's text number): each slot's features are its own tokens' mean, or
  its first token (cls), as numpy computes them from the text alone; empty slots give 0."""
  rng = np.random.default_rng(1)
  hidden = rng.normal(size=(2, 9, 5)).astype(np.float32)
  mask = np.array([[1, 1, 1, 2, 2, 3, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1]])
  for kind in ("mean", "cls"):
    got = np.asarray(heads.pool(jnp.asarray(hidden), jnp.asarray(mask), kind, slots=4)).reshape(2, 4, 5)
    for r in range(2):
      for s in range(4):
        tokens = hidden[r][mask[r] == s + 1]
        expected = np.zeros(5) if not len(tokens) else tokens.mean(0) if kind == "mean" else tokens[0]
        np.testing.assert_allclose(got[r, s], expected, rtol=1e-6, atol=1e-7)


def test_heads_compute_in_float32_under_bfloat16_features():
  """A score of about 1234.567 from bfloat16 features is that score, not its bfloat16 rounding (1232)."""
  rng = np.random.default_rng(0)
  features = rng.normal(size=(4, 32)).astype(np.float32)
  params = {"kernel": rng.normal(size=(32, 1)).astype(np.float32), "bias": np.full((1,), 1234.567, np.float32)}
  half = jnp.asarray(features, jnp.bfloat16)
  got = heads.apply_grouped(params, half)
  expected = np.asarray(half, np.float64) @ params["kernel"] + params["bias"]
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-3)


def test_head_inits_have_their_documented_scale():
  """normal: BERT's std 0.02 (truncated at 2 std), bias 0, as before head_init existed; xavier: torch's
  xavier_uniform_ kernel and nn.Linear's bias bound, for a MiniLM-sized head (384 features, 48 + 21 tags)."""
  key = jax.random.key(0)
  normal = heads.init_grouped(key, 384, 69)
  np.testing.assert_array_equal(normal["kernel"], 0.02 * jax.random.truncated_normal(key, -2, 2, (384, 69)))
  assert not np.any(normal["bias"])
  xavier = heads.init_grouped(key, 384, 69, "xavier")
  bound = np.sqrt(6 / (384 + 69))
  assert np.abs(xavier["kernel"]).max() <= bound and np.abs(xavier["kernel"]).max() > 0.99 * bound
  assert abs(float(np.std(xavier["kernel"])) - bound / np.sqrt(3)) < 0.02 * bound  # uniform: std = bound / sqrt(3)
  assert 0 < np.abs(xavier["bias"]).max() <= 1 / np.sqrt(384)
