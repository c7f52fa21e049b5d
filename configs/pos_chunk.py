"""Flair tutorial example 1: UPOS tagging on UD English EWT + chunking on CoNLL-2000, one shared encoder.

Each corpus is downsampled to 10%, as in the tutorial. The corpora live in `config.data.root` (../shared/data).
  python -m mtl_jax.main --config=configs/pos_chunk.py --workdir=runs/pos_chunk
  python -m mtl_jax.main --config=configs/pos_chunk.py:smoke --workdir=/tmp/pos_chunk_smoke
"""

import ml_collections

from configs import default


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = default.corpus_defaults(default.get_config())  # one epoch, small batches; corpora under data.root
  c.tasks.pos = dict(kind="tagging", weight=1.0, data=dict(  # UPOS: token accuracy is its main score
      format="conllu", column="upos", train="ud_en_ewt/en_ewt-ud-train.conllu.gz",
      validation="ud_en_ewt/en_ewt-ud-dev.conllu", test="ud_en_ewt/en_ewt-ud-test.conllu", downsample=0.1))
  c.tasks.chunk = dict(kind="tagging", scheme="IOB2", weight=1.0, data=dict(  # chunks: span F1 is its main score
      format="conll", columns=dict(pos=1, chunk=2), tag="chunk", train="conll2000/train.txt",
      validation="0.1",  # CoNLL-2000 has no dev split: 10% of train, seeded
      test="conll2000/test.txt", downsample=0.1))
  # learning rates: the schema's recipe (encoder 3e-4, heads 3e-3), which these dev splits chose (README: "Why
  # learning was slow"; experiments/sweep_recipe.py)

  return default.finish(c, arg, steps=6, pos=0.01, chunk=0.02)
