"""Flair tutorial example 1: UPOS tagging on UD English EWT + chunking on CoNLL-2000, one shared encoder.

Each corpus is downsampled to 10%, as in the tutorial. The corpora live in `config.data.root` (../shared/data).
  python -m mtl_jax.main --config=configs/pos_chunk.py --workdir=runs/pos_chunk
  python -m mtl_jax.main --config=configs/pos_chunk.py:smoke --workdir=/tmp/pos_chunk_smoke
"""

import ml_collections

from configs import three_task


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = three_task.get_config()  # encoder, mesh and optimizer settings as in the three-task example
  c.tasks = ml_collections.ConfigDict()
  c.tasks.pos = dict(kind="tagging", weight=1.0, data=dict(  # UPOS: token accuracy is its main score
      format="conllu", column="upos", train="ud_en_ewt/en_ewt-ud-train.conllu.gz",
      validation="ud_en_ewt/en_ewt-ud-dev.conllu", test="ud_en_ewt/en_ewt-ud-test.conllu", downsample=0.1))
  c.tasks.chunk = dict(kind="tagging", scheme="IOB2", weight=1.0, data=dict(  # chunks: span F1 is its main score
      format="conll", columns=dict(pos=1, chunk=2), tag="chunk", train="conll2000/train.txt",
      validation="0.1",  # CoNLL-2000 has no dev split: 10% of train, seeded
      test="conll2000/test.txt", downsample=0.1))

  c.data.train = ""  # no table: each task reads its own corpus
  c.data.validation = ""
  c.data.label_order = ()
  c.data.root = "../shared/data"  # where the corpora live; override with --config.data.root=...
  c.data.length_buckets = (32, 48, 64, 96, 128)
  c.train.epochs = 1.0  # the tutorial's comparison point: scores after one epoch
  c.train.eval_every = 0  # once per epoch
  c.train.batch_size = 8  # small batches, as Flair's fine_tune (mini_batch_size=4): many updates in one epoch
  c.train.eval_batch_size = 64
  c.train.learning_rate = 1e-4
  c.train.warmup_steps = 20
  c.train.best_metric = "eval/mean/main"

  return three_task.smoke(c, steps=6, pos=0.01, chunk=0.02) if three_task.check_arg(arg) else c
