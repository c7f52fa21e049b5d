"""The defaults every config starts from, and the helpers the configs share.

Every field, its default and what it means: mtl_jax/schema.py (`FIELDS`, `TASK_FIELDS`, `DATA_FIELDS`), also the
README's "Config reference". A config takes `get_config()`, sets only what differs from it and ends with `finish`
(which fills in each task's unset fields, so that the command line can override them, and makes the `:smoke` run):

  c = default.get_config()
  c.tasks.topic = dict(kind="classification", data=dict(format="csv", train="ag_news/train.csv", ...))
  return default.finish(c, arg, steps=6, topic=0.02)

It has no tasks, so it does not train by itself (schema.validate asks for at least one task).
"""

import ml_collections

from mtl_jax import schema


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = schema.defaults()
  return smoke(c, steps=12) if check_arg(arg) else c


def check_arg(arg: str) -> bool:
  """True for `:smoke`; the empty argument is the full run; anything else is a mistake."""
  if arg not in ("", "smoke"):
    raise ValueError(f"unknown config argument {arg!r}; expected '' or 'smoke'")
  return arg == "smoke"


def finish(c: ml_collections.ConfigDict, arg: str, steps: int, **downsample: float) -> ml_collections.ConfigDict:
  """What a config returns: every task field at its default where the config leaves it unset (so that the command line
  can override any, `--config.tasks.pos.label_smoothing=0.1`), and for `:smoke` the smoke run of `smoke`."""
  schema.complete_tasks(c)
  return smoke(c, steps, **downsample) if check_arg(arg) else c


def smoke(c: ml_collections.ConfigDict, steps: int, **downsample: float) -> ml_collections.ConfigDict:
  """The same code path in seconds: a tiny random encoder, a few steps, short buckets, downsampled corpora."""
  c.encoder.name = "random-tiny"
  c.train.update(dict(batch_size=16, eval_batch_size=64, steps=steps, warmup_steps=2, log_every=2,
                      eval_every=steps // 2, learning_rate=1e-3))
  c.data.length_buckets = (32, 64)
  for task, fraction in downsample.items():
    c.tasks[task].data.downsample = fraction
  return c


def corpus_defaults(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Training settings of the corpus-per-task examples (the Flair tutorials'): one epoch, small batches."""
  c.train.epochs = 1.0  # the tutorials' comparison point: scores after one epoch
  c.train.eval_every = 0  # once per epoch
  c.train.batch_size = 8  # small batches, as Flair's fine_tune (mini_batch_size=4): many updates in one epoch
  c.train.eval_batch_size = 64
  c.train.best_metric = "eval/mean/main"  # each task's headline score: span F1, or (token) accuracy
  return c
