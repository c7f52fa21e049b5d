"""The memory estimate that makes out-of-memory settings fail early is close to what XLA allocates (the CLI cases
are in test_bad_input.py)."""

import jax
import jax.numpy as jnp
import pytest
from runs import load_config

from mtl_jax.encoder import RANDOM_PRESETS
from mtl_jax.encoders import Encoder, EncoderConfig
from mtl_jax.errors import UserError
from mtl_jax.resources import (
  GIB,
  check_memory,
  encoder_params,
  eval_activation_bytes,
  train_activation_bytes,
  train_shapes,
)

ENC = EncoderConfig(vocab_size=30522, **RANDOM_PRESETS["random-small"])


def compiled_memory(fn, *args):
  return jax.jit(fn).lower(*args).compile().memory_analysis()


@pytest.mark.parametrize("batch,length", [(8, 128), (4, 256)])
def test_estimate_is_close_to_xla_memory_analysis(batch, length):
  model = Encoder(ENC, jnp.float32)
  ids = jnp.zeros((batch, length), jnp.int32)
  mask = jnp.ones((batch, length), jnp.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), ids, mask))
  loss = lambda p, ids, mask: jnp.mean(model.apply(p, ids, mask, deterministic=False,
                                                   rngs={"dropout": jax.random.key(1)}) ** 2)
  train = compiled_memory(jax.grad(loss), params, ids, mask)
  assert 0.7 < train_activation_bytes(ENC, batch, length, 4, remat=False) / train.temp_size_in_bytes < 1.4
  assert encoder_params(ENC) * 4 == pytest.approx(train.argument_size_in_bytes, rel=0.01)  # the float32 params
  forward = compiled_memory(lambda p, ids, mask: model.apply(p, ids, mask), params, ids, mask)
  assert 0.6 < eval_activation_bytes(ENC, batch, length, 4) / forward.temp_size_in_bytes < 1.5


def test_a_token_budget_is_checked_at_every_bucket_and_named():
  """At a constant token count attention grows with the length, so the longest bucket's (B_L, L) needs the most; a
  limit between the two longest buckets' needs fails on the longest, naming config.data.tokens_per_batch."""
  config = load_config("", **{"data.length_buckets": (16, 32, 64, 128, 256), "data.tokens_per_batch": 4096,
                              "data.packing": False, "train.eval_batch_size": 2})
  shapes = train_shapes(config, batch_shards=2)
  assert shapes == [(256, 16), (128, 32), (64, 64), (32, 128), (16, 256)]
  need = lambda b, n: 16 * encoder_params(ENC) + train_activation_bytes(ENC, b // 2, n, 4, remat=False)
  assert [need(*s) for s in shapes] == sorted(need(*s) for s in shapes)
  assert "batches of 16 x 256 tokens" in check_memory(config, ENC, batch_shards=2, param_shards=1)
  config.train.memory_limit_gb = (need(32, 128) + need(16, 256)) / 2 / GIB
  with pytest.raises(UserError, match=r"^config.data.tokens_per_batch: 4096 tokens per batch, as 16 examples of 256 "
                                      r"tokens, need about .* lower it or the longest of config.data.length_buckets"):
    check_memory(config, ENC, batch_shards=2, param_shards=1)
  config.data.length_buckets = (16, 32, 64, 128)  # without the longest bucket it fits
  assert "batches of 32 x 128 tokens" in check_memory(config, ENC, batch_shards=2, param_shards=1)
  config.data.tokens_per_batch = 0  # fixed rows: train.batch_size (32) x the longest bucket
  assert train_shapes(config, batch_shards=2) == [(32, 128)]
  config.data.packing = True  # packed: at most train.batch_size rows of the longest bucket, or the budget's rows
  assert train_shapes(config, batch_shards=2) == [(32, 128)]
  config.data.tokens_per_batch = 1000  # 7 rows fit; a multiple of the 2 batch shards: 6, as training packs them
  assert train_shapes(config, batch_shards=2) == [(6, 128)]
  with pytest.raises(UserError, match=r"^config.data.tokens_per_batch: 1000 tokens per batch, as 6 packed rows of "
                                      r"128 tokens, need about"):
    config.train.memory_limit_gb = need(2, 128) / GIB
    check_memory(config, ENC, batch_shards=2, param_shards=1)
