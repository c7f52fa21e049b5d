"""The memory estimate that makes out-of-memory settings fail early is close to what XLA allocates (the CLI cases
are in test_bad_input.py)."""

import jax
import jax.numpy as jnp
import pytest

from mtl_jax.encoder import RANDOM_PRESETS, Encoder, EncoderConfig
from mtl_jax.resources import encoder_params, eval_activation_bytes, train_activation_bytes

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
