"""Three tasks on one table: sentiment (3) / urgency (2) / topic (4) of customer-support messages.

  python -m mtl_jax.main --config=configs/three_task.py --workdir=runs/three_task
  python -m mtl_jax.main --config=configs/three_task.py:smoke --workdir=/tmp/smoke   # tiny random encoder, seconds
"""

import ml_collections

from configs import default


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = default.get_config()  # every other field at its default (mtl_jax/schema.py)
  c.tasks.sentiment = dict(kind="classification", labels=("negative", "neutral", "positive"), weight=1.0,
                           label_smoothing=0.0)
  c.tasks.urgency = dict(kind="classification", labels=("low", "high"), weight=1.0, label_smoothing=0.0)
  c.tasks.topic = dict(kind="classification", labels=("billing", "technical", "shipping", "account"), weight=1.0,
                       label_smoothing=0.0)

  c.data.train = "examples/support/train.jsonl"  # JSONL table: text, labels (one per task, in label_order)
  c.data.validation = "examples/support/validation.jsonl"
  c.data.label_order = ("sentiment", "urgency", "topic")  # the task of each position in a row's `labels`

  return default.finish(c, arg, steps=12)
