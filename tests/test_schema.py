"""The config schema: every shipped config fits it, every field is documented, and `validate` names mistakes."""

import glob
import importlib.util
import inspect
import json
import os

import ml_collections
import pytest

from mtl_jax import corpora, optim, readers, schema, tasks
from mtl_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                 if not p.endswith("__init__.py"))


def load_config(name: str, arg: str = "") -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def leaves(config, prefix: str = "") -> dict:
  """{"section.field": value} of a config, without the tasks (they have their own tables)."""
  out = {}
  for key, value in config.items():
    path = prefix + key
    if isinstance(value, ml_collections.ConfigDict) and path != "tasks":
      out.update(leaves(value, path + "."))
    else:
      out[path] = value
  return out


def paths_in_order(config) -> list[str]:
  """The fields of a config in its field order (ConfigDict iterates sorted; its JSON keeps the order)."""
  paths = []
  for key, value in json.loads(config.to_json()).items():
    paths += [f"{key}.{f}" for f in value] if isinstance(value, dict) and key != "tasks" else [key]
  return paths


VARIANTS = [(name, arg) for name in CONFIGS for arg in ("", "smoke")]


def test_configs_are_found():
  assert {"default", "three_task", "pos_chunk", "flair_pos_chunk", "airline", "news_topic_ner"} <= set(CONFIGS)


def test_flair_pos_chunk_is_the_tutorials_data():
  """Flair's multitask example 1: XPOS + CoNLL-2000 chunks, 10% of every split, 2 epochs, every tag named, the
  swept recipe's learning rates; else pos_chunk.py."""
  flair, ours = load_config("flair_pos_chunk"), load_config("pos_chunk")
  assert flair.tasks.pos.data.column == "xpos" and flair.train.epochs == 2.0
  assert (flair.train.learning_rate, flair.train.head_learning_rate) == (3e-4, 1e-2)
  assert flair.encoder.dropout == 0.0 and flair.tasks.pos.label_smoothing == flair.tasks.chunk.label_smoothing == 0.1
  flair.train.head_learning_rate = ours.train.head_learning_rate  # the encoder's rate is pos_chunk.py's
  flair.encoder.dropout = ours.encoder.dropout
  flair.tasks.pos.label_smoothing = flair.tasks.chunk.label_smoothing = 0.0
  assert all(task.data.downsample == 0.1 for task in flair.tasks.values())
  assert len(flair.tasks.pos.labels) == 49 and len(flair.tasks.chunk.labels) == 23  # EWT's XPOS, O + B/I x 11 types
  flair.tasks.pos.data.column, flair.train.epochs = ours.tasks.pos.data.column, ours.train.epochs
  flair.tasks.pos.labels, flair.tasks.chunk.labels = ours.tasks.pos.labels, ours.tasks.chunk.labels
  assert flair.to_dict() == ours.to_dict()


@pytest.mark.parametrize("name,arg", VARIANTS)
def test_every_config_field_is_a_schema_field_of_its_type(name, arg):
  defaults = leaves(schema.defaults())
  for path, value in leaves(load_config(name, arg)).items():
    assert path in defaults, f"configs/{name}.py:{arg}: {path} is not in mtl_jax/schema.py FIELDS"
    assert type(value) is type(defaults[path]), f"configs/{name}.py:{arg}: {path} is {value!r}"


@pytest.mark.parametrize("name,arg", VARIANTS)
def test_every_task_and_data_field_is_documented_and_fits_the_format(name, arg):
  for task, cfg in load_config(name, arg).tasks.items():
    assert set(cfg) <= set(schema.TASK_FIELDS), (name, task)
    data = cfg.get("data") or {}
    for field in data:
      assert field in schema.DATA_FIELDS, (name, task, field)
      assert data["format"] in schema.DATA_FIELDS[field][2], f"{name}: {task}.data.{field} is not read by its format"


OVERRIDES = {"weight": "2.5", "label_smoothing": "0.25", "threshold": "0.75", "loss": "huber", "scheme": "BIOES",
             "num_classes": "7", "labels": "('a', 'b')", "kind": "regression", "downsample": "0.5",
             "validation": "0.2", "test": "", "separator": "\t", "word_column": "1", "header": "False",
             "label_names": "classes.txt", "text_columns": "('t',)", "text_pair_columns": "('p',)",
             "backslash_escapes": "True", "skip_empty": "True", "data_dir": "d", "words": "w", "name": "n",
             "data_files": "f"}


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "default"])
def test_every_task_field_a_config_leaves_unset_can_be_set_on_the_command_line(name):
  """ml_collections overrides only fields that exist (and not None ones): every shipped config has each task field
  and each data field its format reads, so `--config.tasks.<task>.<field>=...` works for all of them."""
  from absl import flags
  from ml_collections import config_flags
  plain = load_config(name)
  args = []
  for task, cfg in plain.tasks.items():
    fmt = (cfg.get("data") or {}).get("format")
    args += [f"--config.tasks.{task}.{f}={OVERRIDES[f]}" for f in schema.TASK_FIELDS if f != "data"]
    args += [f"--config.tasks.{task}.data.{f}={OVERRIDES[f]}" for f, (_, _, formats) in schema.DATA_FIELDS.items()
             if fmt in formats and f in OVERRIDES and f not in corpora.SELECTOR[fmt]]
  argv = ["main", f"--config={os.path.join(REPO, 'configs', name + '.py')}", *args]
  values = flags.FlagValues()  # main.py's flag, reading this argv (it finds the override flags in sys.argv)
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True, sys_argv=argv)
  values(argv)
  for arg in args:
    path, value = arg[len("--config."):].split("=", 1)
    *parents, field = path.split(".")
    section = values.config
    for key in parents:
      section = section[key]
    expected = {"False": False, "True": True}.get(value, value)
    assert str(section[field]) == str(eval(expected) if value.startswith("(") else expected), arg
  for task in plain.tasks:  # and the run's Task reads them
    built = tasks.task_from_config(task, values.config.tasks[task])
    assert (built.weight, built.label_smoothing, built.kind) == (2.5, 0.25, "regression")


@pytest.mark.parametrize("name,arg", [v for v in VARIANTS if v[0] != "default"])  # default.py has no tasks
def test_validate_accepts_every_shipped_config(name, arg):
  schema.validate(load_config(name, arg))


def test_defaults_are_the_fields_in_order_each_with_a_comment():
  config = schema.defaults()
  assert paths_in_order(config) == list(schema.FIELDS)
  assert set(leaves(config)) == set(schema.FIELDS)
  assert list(dict.fromkeys(p.split(".")[0] for p in schema.FIELDS if "." in p)) == list(schema.SECTIONS)
  for table in (schema.FIELDS, schema.TASK_FIELDS, schema.DATA_FIELDS):
    for field, (_, comment, *_) in table.items():
      assert isinstance(comment, str) and len(comment) > 10, field
  assert all(set(formats) <= set(schema.ALL) for _, _, formats in schema.DATA_FIELDS.values())
  assert schema.defaults() is not config and schema.defaults().to_json() == config.to_json()  # a fresh copy


def test_data_formats_are_the_readers():
  assert set(schema.ALL) == set(corpora.SELECTOR)


def test_data_defaults_are_the_readers_defaults():
  default = lambda function, name: inspect.signature(function).parameters[name].default
  assert schema.DATA_FIELDS["word_column"][0] == default(readers.read_conll, "word_column")
  assert schema.DATA_FIELDS["separator"][0] == default(readers.read_conll, "separator")
  assert schema.DATA_FIELDS["column"][0] == default(readers.read_conllu, "column")
  for field in ("header", "backslash_escapes", "skip_empty"):
    assert schema.DATA_FIELDS[field][0] == default(readers.read_text_classification, field)


def test_each_decay_warms_up_then_decays_as_named():
  ends = {"linear": 0.0, "cosine": 0.0, "constant": 1e-3}
  assert set(optim.DECAYS) == set(ends)
  for decay in optim.DECAYS:
    lr = optim.learning_rate_schedule(ml_collections.ConfigDict(dict(learning_rate=1e-3, warmup_steps=2,
                                                                     decay=decay)), 10)
    assert float(lr(0)) == 0.0 and abs(float(lr(2)) - 1e-3) < 1e-9 and abs(float(lr(10)) - ends[decay]) < 1e-9
  half = optim.learning_rate_schedule(ml_collections.ConfigDict(dict(learning_rate=1.0, warmup_steps=0,
                                                                     decay="cosine")), 10)(5)
  assert abs(float(half) - 0.5) < 1e-6  # cosine: (1 + cos(pi / 2)) / 2 halfway


def test_reference_lists_every_field():
  text = schema.reference_markdown()
  for path in schema.FIELDS:
    assert f"| `{path}` |" in text
  for field in (*schema.TASK_FIELDS, *schema.DATA_FIELDS):
    assert f"| `{field}` |" in text
  assert "| `sampling.strategy` | `'proportional'` | proportional \\| temperature" in text


def mutated(name: str, **changes) -> ml_collections.ConfigDict:
  """configs/<name>.py:smoke with `changes` ("tasks__topic__kind" for tasks.topic.kind) applied to its values."""
  values = load_config(name, "smoke").to_dict()
  for key, value in changes.items():
    *parents, leaf = key.split("__")
    node = values
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return ml_collections.ConfigDict(values)


BAD = [  # (config, changes, the exact message)
    ("three_task", dict(encoder__pooling="max"),
     "config.encoder.pooling: expected one of ('cls', 'mean'), found 'max'"),
    ("three_task", dict(encoder__dtype="float16"),
     "config.encoder.dtype: expected one of ('float32', 'bfloat16'), found 'float16'"),
    ("three_task", dict(encoder__head_init="kaiming"),
     "config.encoder.head_init: expected one of ('normal', 'xavier'), found 'kaiming'"),
    ("three_task", dict(encoder__head_dropout=1.0),
     "config.encoder.head_dropout: expected a number in [0, 1), found 1.0"),
    ("three_task", dict(data__length_buckets=(2, 64)),
     "config.data.length_buckets: expected a non-empty list of lengths > 2, found (2, 64)"),
    ("three_task", dict(data__tokens_per_batch=-1),
     "config.data.tokens_per_batch: expected an integer >= 0 (0 = batches of train.batch_size rows), found -1"),
    ("three_task", dict(train__grad_accumulation=0),
     "config.train.grad_accumulation: expected a number > 0 (1 = no accumulation), found 0"),
    ("three_task", dict(train__loss_weighting="gradnorm"),
     "config.train.loss_weighting: expected one of ('static', 'uncertainty', 'pcgrad'), found 'gradnorm'"),
    ("three_task", dict(train__tensorboard=1), "config.train.tensorboard: expected True or False, found 1"),
    ("three_task", dict(train__best_mode="maximum"),
     "config.train.best_mode: expected 'max' or 'min', found 'maximum'"),
    ("three_task", dict(mesh__fsdp=-1),
     "config.mesh: at most one axis may be -1, found {'data': -1, 'fsdp': -1, 'model': 1}"),
    ("three_task", dict(train__tasks=("sentimnt",)),
     "config.train.tasks: unknown task 'sentimnt' (did you mean 'sentiment'?)"),
    ("three_task", dict(data__label_order=("sentiment", "urgency")),
     "config.data.label_order: tasks ['topic'] are defined but have no position in `labels`"),
    ("three_task", dict(data__label_order=("sentiment", "urgency", "topic", "topic")),
     "config.data.label_order: a task is listed twice: ['sentiment', 'urgency', 'topic', 'topic']"),
    ("three_task", dict(tasks={}, data__label_order=()),
     "config.tasks: no tasks; name at least one (config.tasks.<name> = dict(kind=..., ...))"),
    ("three_task", dict(data__validation=""),
     "config.data.validation: expected a table file (.csv, .json, .jsonl, .parquet, .tsv) or a save_to_disk folder, "
     "a fraction (\"0.1\", \"10%\") or a row count of data.train, found ''"),
    ("three_task", dict(data__validation="dev"),
     "config.data.validation: expected a table file (.csv, .json, .jsonl, .parquet, .tsv) or a save_to_disk folder, "
     "a fraction (\"0.1\", \"10%\") or a row count of data.train, found 'dev'"),
    ("three_task", dict(data__test="test.txt"),
     "config.data.test: expected a table file (.csv, .json, .jsonl, .parquet, .tsv) or a save_to_disk folder, "
     "found 'test.txt'"),
    ("three_task", dict(tasks__topic__lables=("a", "b")),
     "config.tasks.topic.lables: no such task field (did you mean 'labels'?)"),
    ("three_task", dict(tasks__topic__kind="ranking"),
     "config.tasks.topic.kind: expected one of ('classification', 'tagging', 'multilabel', 'regression'), found "
     "'ranking'"),
    ("three_task", dict(tasks__topic__kind="regression"),
     "config.tasks.topic: a regression task has no labels (its value is a number), found labels/num_classes"),
    ("three_task", dict(tasks__topic__threshold=0.3),
     "config.tasks.topic.threshold: only multilabel tasks have it, this task is classification"),
    ("three_task", dict(tasks__topic__kind="multilabel", tasks__topic__threshold=1.5),
     "config.tasks.topic.threshold: expected a number in (0, 1), found 1.5"),
    ("three_task", dict(tasks__topic__kind="multilabel", tasks__topic__threshold="high"),
     "config.tasks.topic.threshold: expected a number in (0, 1), found 'high'"),
    ("three_task", dict(tasks__topic__weight="2"), "config.tasks.topic.weight: expected a number >= 0, found '2'"),
    ("pos_chunk", dict(tasks__pos__kind="regression"),
     "config.tasks.pos.data.format: a regression task reads a table (config.data.train) or a corpus of format csv, "
     "jsonl or hf, found 'conllu'"),
    ("three_task", dict(tasks__topic__num_classes=3), "config.tasks.topic: num_classes=3 but 4 labels are named"),
    ("three_task", dict(tasks__topic__labels=("a", "a")),
     "config.tasks.topic.labels: names must be distinct, found ['a', 'a']"),
    ("three_task", dict(tasks__topic__scheme="IOB2"),
     "config.tasks.topic.scheme: expected one of ('IOB1', 'IOB2', 'BIOES') for a tagging task, found 'IOB2'"),
    ("three_task", dict(tasks__topic__weight=-1.0), "config.tasks.topic.weight: expected a number >= 0, found -1.0"),
    ("three_task", dict(tasks__topic__label_smoothing=1.0),
     "config.tasks.topic.label_smoothing: expected a number in [0, 1), found 1.0"),
    ("three_task", dict(sampling__strategy="mixed"),
     "config.sampling.strategy: expected one of proportional, temperature, uniform, explicit, found 'mixed'"),
    ("three_task", dict(sampling__weights=(1.0,)),
     "config.sampling.weights: only used with strategy 'explicit', found strategy 'proportional'"),
    ("three_task", dict(sampling__strategy="temperature", sampling__temperature=0.0),
     "config.sampling.temperature: expected a number > 0, found 0.0"),
    ("three_task", dict(sampling__strategy="explicit"),
     "config.sampling.weights: expected 1 weights (one per corpus), found None"),
    ("three_task", dict(sampling__strategy="explicit", sampling__weights=(-1.0,)),
     "config.sampling.weights[0]: expected a finite number >= 0, found -1.0"),
    ("three_task", dict(sampling__strategy="explicit", sampling__weights=(0.0,)),
     "config.sampling.weights: expected at least one weight > 0, found [0.0]"),
    ("three_task", dict(train__tasks=("sentiment",), sampling__epoch_task="topic"),
     "config.sampling.epoch_task: unknown task 'topic'; tasks are ['sentiment']"),
    ("three_task", dict(train__best_metric="xyz"),
     "config.train.best_metric: unknown metric 'xyz'; e.g. 'eval/mean/accuracy'"),
    ("three_task", dict(train__head_learning_rate=-1e-4),
     "config.train.head_learning_rate: expected a number >= 0 (0 = train.learning_rate), found -0.0001"),
    ("three_task", dict(train__layer_decay=1.5), "config.train.layer_decay: expected a number in (0, 1] (1 = off), "
     "found 1.5"),
    ("three_task", dict(train__layer_decay=0.0), "config.train.layer_decay: expected a number in (0, 1] (1 = off), "
     "found 0.0"),
    ("three_task", dict(train__learning_rate=0.0), "config.train.learning_rate: expected a number > 0, found 0.0"),
    ("three_task", dict(train__decay="exponential"),
     "config.train.decay: expected one of ['constant', 'cosine', 'linear'], found 'exponential'"),
    ("pos_chunk", dict(tasks__pos__data__format="txt"),
     "config.tasks.pos.data.format: expected one of ['conll', 'conllu', 'csv', 'hf', 'jsonl', 'tfds', 'tweeteval'], "
     "found 'txt'"),
    ("pos_chunk", dict(tasks__pos__data__colunm="upos"),
     f"config.tasks.pos.data.colunm: no such data field; expected one of {tuple(schema.DATA_FIELDS)}"),
    ("pos_chunk", dict(tasks__pos__data__train=""), "config.tasks.pos.data.train: a path is required"),
    ("pos_chunk", dict(tasks__chunk__data__format="tfds"),
     "config.tasks.chunk.data.dataset: a TFDS dataset is required (\"name\", \"name/config\" or "
     "\"name/config:version\")"),
    ("pos_chunk", dict(sampling__strategy="explicit", sampling__weights=(1.0,)),
     "config.sampling.weights: expected 2 weights (one per corpus), found [1.0]"),
    ("airline", dict(sampling__strategy="explicit", sampling__weights=(1.0, 1.0, 1.0)),  # one CSV: one corpus
     "config.sampling.weights: expected 1 weights (one per corpus), found [1.0, 1.0, 1.0]"),
    ("pos_chunk", dict(train__best_metric="eval/pos/f2"),
     "config.train.best_metric: unknown metric 'eval/pos/f2' (did you mean 'eval/pos/f1'?)"),
]


@pytest.mark.parametrize("name,changes,message", BAD, ids=[f"{n}-{'-'.join(c)}" for n, c, _ in BAD])
def test_validate_names_the_mistake(name, changes, message):
  with pytest.raises(UserError) as info:
    schema.validate(mutated(name, **changes))
  assert str(info.value) == message


@pytest.mark.parametrize("name,changes", [
    ("pos_chunk", dict(train__tasks=("pos",), tasks__chunk__kind="bad")),  # an unchosen corpus task is not read
    ("pos_chunk", dict(data__label_order=("nope",))),  # corpus configs have no label order
    ("pos_chunk", dict(sampling__strategy="explicit", sampling__weights=(1.0, 3.0))),
    ("three_task", dict(sampling__strategy="temperature", sampling__temperature=2.0)),
])
def test_validate_accepts_what_a_run_accepts(name, changes):
  schema.validate(mutated(name, **changes))
