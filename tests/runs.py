"""Helpers for the end-to-end tests: the smoke config on a small learnable table, run histories, crashes."""

import importlib.util
import json
import os
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from absl import flags

from mtl_jax import checkpoint, evaluate
from mtl_jax.predict import Predictor
from mtl_jax.sampling import MixtureOrder
from mtl_jax.train import train_and_evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORDS_LABELS = {"sentiment": ("negative", "neutral", "positive"), "urgency": ("low", "high"),
                "topic": ("billing", "technical", "shipping", "account")}
WORDS = {"sentiment": ["awful broken angry", "a question about", "thanks great love"],
         "urgency": ["whenever you can", "urgent asap today"],
         "topic": ["invoice refund", "app login", "parcel delivery", "password profile"]}


def read_events(directory):
  """Every TensorBoard event under `directory`, parsed from the TFRecord framing (length, crc, data, crc) by hand."""
  from tensorboardX.proto import event_pb2
  events = []
  for name in sorted(os.listdir(directory)):
    data, pos = open(os.path.join(directory, name), "rb").read(), 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      events.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + length]))
      pos += 12 + length + 4
  return events


def load_config(arg="smoke", **overrides):
  spec = importlib.util.spec_from_file_location("three_task", os.path.join(REPO, "configs", "three_task.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  for key, value in overrides.items():
    section, field = key.split(".")
    config[section][field] = value
  return config


def make_table(path, n, seed=0):
  """A learnable three-task table: each label is signalled by its own words."""
  rng = np.random.default_rng(seed)
  with open(path, "w") as f:
    for i in range(n):
      labels = [int(rng.integers(len(WORDS[t]))) for t in WORDS]
      text = " ".join(WORDS[t][y] for t, y in zip(WORDS, labels)) + f" ticket {i}"
      if i % 10 == 3:
        labels[1] = None  # some rows carry no urgency label
      f.write(json.dumps({"text": text, "labels": labels}) + "\n")
  return str(path)


def named_config(name: str, arg: str = "smoke"):
  """`configs/<name>.py`'s get_config(arg), loaded from its file."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def smoke(table, **overrides):
  return load_config(**{"data.train": table, "data.validation": "0.25", "train.steps": 8, "train.eval_every": 4,
                        "train.log_every": 2, **overrides})


def read_history(workdir, timings=True):
  """metrics.jsonl as a list of dicts; `timings=False` drops what depends on the process rather than the run:
  wall-clock throughput, and the compile count (a resumed process compiles again)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  varies = ("per_sec", "compiles")
  return rows if timings else [{k: v for k, v in r.items() if not k.endswith(varies)} for r in rows]


def latest_params(workdir):
  """The latest checkpoint's params on this process's device, whatever mesh or process count saved them."""
  return Predictor.load(os.path.join(workdir, checkpoint.LATEST)).params


def crash_in_step(step, config, workdir, monkeypatch):
  """Runs `config` until the batch of `step` (1-based) is drawn, then fails as a killed process would."""
  real_indices = MixtureOrder.indices

  def crash(self, index):
    if index == step - 1:
      raise KeyboardInterrupt("simulated crash")
    return real_indices(self, index)

  monkeypatch.setattr(MixtureOrder, "indices", crash)
  with pytest.raises(KeyboardInterrupt):
    train_and_evaluate(config, workdir)
  monkeypatch.undo()


def assert_same_run(resumed, uninterrupted):
  """Same metrics history (wall-clock throughput aside) and bitwise-equal final params."""
  assert read_history(resumed, timings=False) == read_history(uninterrupted, timings=False)
  jax.tree.map(np.testing.assert_array_equal, latest_params(resumed), latest_params(uninterrupted))


TRAIN_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from runs import smoke
from mtl_jax.train import train_and_evaluate
import jax
train_and_evaluate(smoke({table!r}, **{overrides!r}), {workdir!r})
print(json.dumps({{"devices": jax.device_count()}}))
"""


def train_command(table: str, workdir: str, **overrides) -> list[str]:
  """A python command that trains `smoke(table, **overrides)` in `workdir` in a process of its own."""
  script = TRAIN_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)), table=table, overrides=overrides,
                               workdir=workdir)
  return [sys.executable, "-c", script]


def start_training(table: str, workdir: str, **overrides) -> subprocess.Popen:
  """The smoke run in a process of its own; returns once its first train-loss event is written."""
  proc = subprocess.Popen(train_command(table, workdir, **overrides), cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  metrics, deadline = os.path.join(workdir, "metrics.jsonl"), time.time() + 120
  while not (os.path.exists(metrics) and os.path.getsize(metrics)) and time.time() < deadline:
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    time.sleep(0.05)
  return proc


def evaluate_cli(*args):
  """The evaluate CLI's main in-process: its own flags parsed from `args`, as `python -m mtl_jax.evaluate ARGS`."""
  fv = flags.FlagValues()
  evaluate.define_flags(fv)
  fv(["evaluate", *args])
  evaluate.main(["evaluate"], fv)


def trained_tokenizer(kind: str, directory, texts: list[str], first: str = "<s>", last: str = "</s>",
                      pair: str | None = None, unigram_vocab: int = 150) -> str:
  """A small tokenizer trained here on `texts`, saved to `directory` (returned): RoBERTa-style byte-level BPE (`Ġ`
  marks a preceding space) or DeBERTa-v3 / XLM-R-style SentencePiece (a unigram model, `▁` marks a word start), with
  the special tokens `first`, <pad>, `last`, <unk> and, when `pair` (a TemplateProcessing pair template) is given, a
  post-processor putting `first ... last` around a text and laying out pairs so."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
  specials = [first, "<pad>", last, "<unk>"]
  if kind == "byte-level BPE":
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  else:
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=unigram_vocab, special_tokens=specials, unk_token="<unk>")
  tok.train_from_iterator(texts, trainer)
  if pair is not None:
    tok.post_processor = processors.TemplateProcessing(single=f"{first} $A {last}", pair=pair,
                                                       special_tokens=[(first, 0), (last, 2)])
  os.makedirs(directory, exist_ok=True)
  tok.save(os.path.join(directory, "tokenizer.json"))
  with open(os.path.join(directory, "special_tokens_map.json"), "w") as f:
    json.dump({"cls_token": first, "bos_token": first, "pad_token": "<pad>", "sep_token": last, "eos_token": last,
               "unk_token": "<unk>"}, f)
  return str(directory)


def corpus_config(root, **tasks):
  """The default config with `tasks` (a corpus each) under data root `root`."""
  from mtl_jax import schema
  c = schema.defaults()
  c.data.root = str(root)
  for name, task in tasks.items():
    c.tasks[name] = task
  return c


ENCODED_FIELDS = ("ids", "type_ids", "tags", "starts", "labels", "weights", "cut", "sentence", "targets")


def assert_same_encoded(got, want) -> None:
  """Two `Encoded`: every field, row by row."""
  for field in ENCODED_FIELDS:
    a, b = getattr(got, field), getattr(want, field)
    assert (a is None) == (b is None), field
    if a is not None:
      assert len(a) == len(b), field
      for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y, err_msg=field)


def assert_same_data(got, want) -> None:
  """Two `corpora.load_data` results: layout, training parts, validation and test pools."""
  assert got[0] == want[0] and list(got[1]) == list(want[1])
  for a, b in [*zip(got[1].values(), want[1].values()), *zip(got[2:], want[2:])]:
    assert (a is None) == (b is None)
    if a is not None:
      assert_same_encoded(a, b)
