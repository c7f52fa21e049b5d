"""Airline tweets: three attributes of the same text, from one CSV: sentiment, negative reason, airline.

`negativereason` is empty for every non-negative tweet: a real missing label, which the reason task's loss and
metrics skip. There is no official split; 10% validation and 10% test are split off (seeded), and tweets with the
same text (the file repeats 155 of them) always land in the same split.
  python -m mtl_jax.main --config=configs/airline.py --workdir=runs/airline
"""

import ml_collections

from configs import pos_chunk, three_task


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = pos_chunk.get_config()  # corpus-per-task defaults (data root, buckets, eval per epoch)
  tweets = dict(format="csv", text_columns=("text",), train="airline_tweets/Tweets.csv", validation="0.1",
                test="0.1")
  c.tasks = ml_collections.ConfigDict()
  c.tasks.sentiment = dict(kind="classification", data=dict(tweets, label_column="airline_sentiment"))  # 3 classes
  c.tasks.reason = dict(kind="classification", data=dict(tweets, label_column="negativereason"))  # 10, negatives only
  c.tasks.airline = dict(kind="classification", data=dict(tweets, label_column="airline"))  # 6 airlines
  c.train.epochs = 1.0
  c.train.batch_size = 32  # tweets are short: larger batches than pos_chunk's
  c.train.eval_batch_size = 128
  c.train.learning_rate = 1e-4

  return three_task.smoke(c, steps=6, sentiment=0.02, reason=0.02, airline=0.02) if three_task.check_arg(arg) else c
