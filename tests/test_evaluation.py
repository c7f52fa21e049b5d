"""Evaluation on packed rows (`input_pipeline.eval_batches`): every example's gathered outputs, of every kind, and the
loss are what the same examples give one per row (`make_batch`)."""

import dataclasses

import jax
import numpy as np
from test_model import LAYOUT, LENGTHS, assert_close, examples

from mtl_jax import encoder as enc
from mtl_jax import evaluation
from mtl_jax.encoders import Encoder
from mtl_jax.input_pipeline import eval_batches, make_batch
from mtl_jax.model import Model
from mtl_jax.steps import eval_step


def test_packed_evaluation_gathers_each_examples_own_outputs():
  model = Model(Encoder(dataclasses.replace(enc.random_config("random-tiny"), vocab_size=20000)), LAYOUT)
  params = jax.tree.map(lambda x: x * 20, jax.jit(model.init)(jax.random.key(0)))  # texts differ a lot
  data, step = examples(), jax.jit(lambda b: eval_step(params, b, model=model))
  batches = eval_batches(data.lengths, rows=2, length=24)  # 7 texts of 3-12 tokens: 3 rows, in batches of 2 and 1
  assert [b.rows for b in batches] == [2, 1]
  stores, sums, counts = evaluation.collect(step, lambda b: b.build(data, pad_id=0), data, LAYOUT, batches)

  alone = make_batch(data, np.arange(len(LENGTHS)), len(LENGTHS), (16,), pad_id=0)
  outputs, expected_sums, expected_counts = step(alone)
  for kind in ("classification", "regression", "multilabel"):
    assert_close(stores[kind], outputs[kind])
  for i, tags in enumerate(stores["tagging"]):
    np.testing.assert_array_equal(tags, np.asarray(outputs["tagging"])[i, data.starts[i]])
  np.testing.assert_allclose(sums, expected_sums, rtol=1e-5)
  np.testing.assert_allclose(counts, expected_counts, rtol=1e-6)
