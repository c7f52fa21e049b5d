"""The model on packed rows (several texts per row, `input_pipeline.make_packed_batch`): each text gets exactly the
logits, and the batch exactly the loss, that the same texts get one per row (`make_batch`), with heads of every
kind. (tests/test_encoders.py checks every encoder family's hidden states on packed rows.)"""

import dataclasses

import jax
import numpy as np

from mtl_jax import encoder as enc
from mtl_jax.encoders import Encoder
from mtl_jax.input_pipeline import Encoded, make_batch, make_packed_batch, make_step_batch
from mtl_jax.losses import grouped_loss
from mtl_jax.model import Model
from mtl_jax.tasks import Layout, Task

LAYOUT = Layout((Task("topic", "classification", ("a", "b", "c")), Task("pos", "tagging", ("X", "Y", "Z", "W")),
                 Task("score", "regression", ("score",)), Task("flags", "multilabel", ("p", "q")),
                 Task("mood", "classification", ("x", "y"))))
LENGTHS = (5, 12, 3, 9, 7, 4, 10)
PLACES = np.array([0, 0, 0, 1, 1, 2, 2])  # rows of 20, 16 and 14 tokens in a batch of 3 x 24


def assert_close(actual, desired):
  """Packed and unpacked texts run through the same kernels, but XLA:CPU's vectorised reductions group a text's values
  by where it lies in its row, so they agree to float32 rounding only, which the weights x 20 below amplify layer by
  layer (on one AVX-512 machine up to 3e-5 of the largest output: 1.6e-3 on a logit of 2.7 beside one of 57); a text
  that saw another's tokens, or outputs read from the wrong slot, differ by a good part of it."""
  desired = np.asarray(desired)
  np.testing.assert_allclose(actual, desired, rtol=0, atol=1e-3 * np.abs(desired).max())


def examples(seed: int = 0) -> Encoded:
  """Texts of LENGTHS (random ids between [CLS] and [SEP]), labelled for some tasks each, tagged for `pos`."""
  rng = np.random.default_rng(seed)
  ids = [np.concatenate([[101], rng.integers(1000, 20000, n - 2), [102]]).astype(np.int32) for n in LENGTHS]
  labels = np.stack([rng.integers(-1, 3, len(LENGTHS)), np.full(len(LENGTHS), -1), rng.integers(-1, 1, len(LENGTHS)),
                     rng.integers(-1, 1, len(LENGTHS)), rng.integers(0, 2, len(LENGTHS))], 1).astype(np.int32)
  tags = []
  for n in LENGTHS:
    t = np.full((n, len(LAYOUT.tasks)), -1, np.int32)
    t[1:n - 1, 1] = rng.integers(0, 4, n - 2)
    tags.append(t)
  starts = [np.arange(1, n - 1) for n in LENGTHS]
  weights = rng.uniform(0.5, 2, (len(LENGTHS), len(LAYOUT.tasks))).astype(np.float32)
  return Encoded(ids, labels, weights, None, tags=tags, starts=starts, sentence=np.arange(len(LENGTHS)),
                 targets=rng.uniform(0, 1, (len(LENGTHS), 3)).astype(np.float32))


def test_packed_texts_get_the_logits_and_loss_they_get_alone():
  encoder = Encoder(dataclasses.replace(enc.random_config("random-tiny"), vocab_size=20000))
  params = jax.tree.map(lambda x: x * 20, jax.jit(Model(encoder, LAYOUT).init)(jax.random.key(0)))  # texts differ a lot
  data, slots = examples(), 4
  alone = make_batch(data, np.arange(len(LENGTHS)), len(LENGTHS), (16,), pad_id=0)
  packed = make_packed_batch(data, np.arange(len(LENGTHS)), PLACES, 3, 24, slots, pad_id=0)
  slot_of = [(int(r), int(np.sum(PLACES[:i] == r))) for i, r in enumerate(PLACES)]
  loss = jax.jit(lambda logits, batch: grouped_loss(logits, batch, LAYOUT))
  for pooling in ("mean", "cls"):
    logits = jax.jit(Model(encoder, LAYOUT, pooling).logits)
    single, together = logits(params, alone), logits(params, packed)
    for kind in ("classification", "regression", "multilabel"):
      for i, (r, s) in enumerate(slot_of):
        assert_close(together[kind][r * slots + s], single[kind][i])
    for i, (r, s) in enumerate(slot_of):
      mine = packed["attention_mask"][r] == s + 1
      assert_close(np.asarray(together["tagging"][r])[mine], np.asarray(single["tagging"][i])[:LENGTHS[i]])
    (sums, counts), expected = loss(together, packed), loss(single, alone)
    np.testing.assert_allclose(sums, expected[0], rtol=1e-5)
    np.testing.assert_allclose(counts, expected[1], rtol=1e-6)
    assert np.all(np.asarray(expected[1]) > 0)  # every task scored something


def test_folded_short_rows_train_with_attention_blocks_and_keep_each_texts_logits():
  """Rows of 16 folded two by two into rows of 32 (`make_step_batch`) and trained with attention blocks of 16
  (`Encoder.blocks`, dropout off): each text gets the logits it has alone; a process's share of the folded batch is
  those rows of it."""
  config = dataclasses.replace(enc.random_config("random-tiny"), vocab_size=20000, dropout_rate=0.0,
                               attention_dropout_rate=0.0)
  params = jax.tree.map(lambda x: x * 20, jax.jit(Model(Encoder(config), LAYOUT).init)(jax.random.key(0)))
  data = examples()
  idx, places = np.array([1, 2, 0, 3, 4, 5, 6]), np.array([0, 0, 1, 1, 2, 2, 3])  # rows of 15, 14, 11, 10 tokens
  folded = make_step_batch(data, idx, places, 2, 16, 32, pad_id=0)
  assert folded["input_ids"].shape == (2, 32) and folded["labels"].shape == (2, 4, len(LAYOUT.tasks))
  for rows in (slice(0, 1), slice(1, 2)):
    part = make_step_batch(data, idx, places, 2, 16, 32, pad_id=0, rows=rows)
    for key in folded:
      np.testing.assert_array_equal(part[key], folded[key][rows])
  alone = make_batch(data, np.arange(len(LENGTHS)), len(LENGTHS), (16,), pad_id=0)
  model = Model(Encoder(config, blocks=(8, 16)), LAYOUT, "mean", head_dropout=0.0)
  single = jax.jit(model.logits)(params, alone)  # evaluation: no blocks
  together = jax.jit(model.logits)(params, folded, jax.random.key(1))  # training: blocks of 16
  for j, (i, r) in enumerate(zip(idx, places)):
    s = int(np.sum(places[:j] == r))  # the text's slot in its row of 16, then in the folded row
    slot = r // 2 * 4 + r % 2 * 2 + s
    for kind in ("classification", "regression", "multilabel"):
      assert_close(together[kind][slot], single[kind][i])
    mine = folded["attention_mask"][r // 2] == slot % 4 + 1
    assert_close(np.asarray(together["tagging"][r // 2])[mine], np.asarray(single["tagging"][i])[:LENGTHS[i]])
