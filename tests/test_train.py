"""End to end: train -> evaluate -> checkpoint -> resume -> predict, on the smoke config and a small table."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import REPO

from mtl_jax import checkpoint
from mtl_jax.errors import UserError
from mtl_jax.predict import Predictor
from mtl_jax.sampling import MixtureOrder
from mtl_jax.train import train_and_evaluate

WORDS_LABELS = {"sentiment": ("negative", "neutral", "positive"), "urgency": ("low", "high"),
                "topic": ("billing", "technical", "shipping", "account")}
WORDS = {"sentiment": ["awful broken angry", "a question about", "thanks great love"],
         "urgency": ["whenever you can", "urgent asap today"],
         "topic": ["invoice refund", "app login", "parcel delivery", "password profile"]}


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


@pytest.fixture(scope="module")
def table(tmp_path_factory):
  return make_table(tmp_path_factory.mktemp("data") / "train.jsonl", 160)


def smoke(table, **overrides):
  return load_config(**{"data.train": table, "data.validation": "0.25", "train.steps": 8, "train.eval_every": 4,
                        "train.log_every": 2, **overrides})


def read_history(workdir, timings=True):
  """metrics.jsonl as a list of dicts; `timings=False` drops the wall-clock throughput, which varies run to run."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return rows if timings else [{k: v for k, v in r.items() if not k.endswith("per_sec")} for r in rows]


def latest_params(workdir):
  mngr = checkpoint.manager(os.path.join(workdir, checkpoint.LATEST), create=False)
  return checkpoint.restore_arrays(mngr, mngr.latest_step(), {"params": None})["params"]


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


def test_train_crash_resume_and_predict(table, tmp_path, monkeypatch):
  # An uninterrupted run of 8 steps ...
  full = str(tmp_path / "full")
  final = train_and_evaluate(smoke(table), full)
  # ... equals the same run crashing in step 6 (after the step-4 checkpoint) and restarted with the same command.
  split = str(tmp_path / "split")
  crash_in_step(6, smoke(table), split, monkeypatch)
  assert checkpoint.manager(os.path.join(split, checkpoint.LATEST)).latest_step() == 4
  resumed = train_and_evaluate(smoke(table), split)
  assert resumed == final
  assert_same_run(split, full)

  history = read_history(full)
  assert [h["step"] for h in history if "eval/mean/accuracy" in h] == [4, 8]
  for task in WORDS:
    assert {f"train/{task}/loss", f"eval/{task}/f1_macro"} <= set().union(*history)
  assert {"eval/mean/mcc", "eval/std/mcc", "eval/mean/loss"} <= set(final)

  predictor = Predictor.load(full)
  results = predictor.predict(["thanks great love urgent asap today parcel delivery", "app login"])
  assert len(results) == 2 and list(results[0]) == list(WORDS)
  for task, names in (("sentiment", 3), ("urgency", 2), ("topic", 4)):
    probs = results[0][task]["probs"]
    assert len(probs) == names and abs(sum(probs.values()) - 1) < 1e-4
    assert results[0][task]["label"] == max(probs, key=probs.get)


def test_learns_well_above_majority(table, tmp_path):
  """A few hundred steps on the tiny encoder separate the keyword-signalled classes."""
  final = train_and_evaluate(smoke(table, **{"train.steps": 120, "train.eval_every": 120,
                                             "train.learning_rate": 3e-3}), str(tmp_path))
  for task, k in (("sentiment", 3), ("urgency", 2), ("topic", 4)):
    assert final[f"eval/{task}/accuracy"] > 1.5 / k, (task, final[f"eval/{task}/accuracy"])


def test_early_stopping_keeps_best(table, tmp_path):
  final = train_and_evaluate(smoke(table, **{"train.steps": 40, "train.eval_every": 2, "train.patience": 1,
                                             "train.best_metric": "eval/mean/loss", "train.best_mode": "min",
                                             "train.learning_rate": 0.5}), str(tmp_path))
  evals = [h for h in read_history(str(tmp_path)) if "eval/mean/loss" in h]
  assert evals[-1]["step"] < 40  # stopped early
  best = min(evals, key=lambda h: h["eval/mean/loss"])
  mngr, step = checkpoint.find(str(tmp_path))
  assert step == best["step"] and step < evals[-1]["step"]
  assert checkpoint.restore_meta(mngr, step)["tracker"]["best"] == pytest.approx(best["eval/mean/loss"])
  assert final["eval/mean/loss"] > best["eval/mean/loss"]


def test_checkpoint_describes_itself(table, tmp_path):
  train_and_evaluate(smoke(table, **{"train.steps": 2, "train.eval_every": 2}), str(tmp_path))
  mngr, step = checkpoint.find(str(tmp_path))
  meta = checkpoint.restore_meta(mngr, step)
  assert [t["name"] for t in meta["tasks"]] == ["sentiment", "urgency", "topic"]
  assert meta["tasks"][2]["labels"] == ["billing", "technical", "shipping", "account"]
  assert meta["encoder"]["hidden_size"] == 32
  params = checkpoint.restore_arrays(mngr, step, {"params": None})["params"]
  assert set(params) == {"encoder", "heads"} and params["heads"]["classification"]["kernel"].shape == (32, 9)
  assert meta["pooling"] == "mean" and meta["dtype"] == "float32" and meta["length_buckets"] == [32, 64]
  tokenizer = checkpoint.restore_tokenizer(mngr, step)
  assert tokenizer("parcel delivery")["input_ids"] == [101, 20463, 6959, 102]


def test_predictor_agrees_with_training_evaluation(tmp_path):
  train_path, val_path = make_table(tmp_path / "train.jsonl", 96), make_table(tmp_path / "val.jsonl", 40, seed=1)
  final = train_and_evaluate(smoke(train_path, **{"data.validation": val_path, "train.steps": 30,
                                                  "train.eval_every": 30, "train.learning_rate": 3e-3}),
                             str(tmp_path / "run"))
  rows = [json.loads(line) for line in open(val_path)]
  results = Predictor.load(str(tmp_path / "run")).predict([r["text"] for r in rows])
  for t, task in enumerate(WORDS):
    names = [r[task]["label"] for r in results]
    gold = [(row["labels"][t], names[i]) for i, row in enumerate(rows) if row["labels"][t] is not None]
    accuracy = np.mean([list(WORDS_LABELS[task]).index(name) == y for y, name in gold])
    assert accuracy == pytest.approx(final[f"eval/{task}/accuracy"], abs=1e-9)


DEVICE_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from test_train import smoke
from mtl_jax.train import train_and_evaluate
import jax
train_and_evaluate(smoke({table!r}, **{{"train.steps": 3, "train.log_every": 1, "train.eval_every": 3}}), {workdir!r})
print(json.dumps({{"devices": jax.device_count()}}))
"""


def run_on_devices(n, table, workdir):
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"}
  script = DEVICE_SCRIPT.format(tests=os.path.dirname(__file__), table=table, workdir=workdir)
  out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 0, out.stderr[-3000:]
  assert json.loads(out.stdout.strip().splitlines()[-1])["devices"] == n
  return read_history(workdir)


def test_one_and_eight_devices_give_the_same_losses(table, tmp_path):
  one, eight = (run_on_devices(n, table, str(tmp_path / str(n))) for n in (1, 8))
  losses = lambda h: [(e["step"], e["train/loss"], e["train/urgency/loss"]) for e in h if "train/loss" in e]
  assert [s for s, *_ in losses(one)] == [1, 2, 3]
  np.testing.assert_allclose(np.array(losses(eight)), np.array(losses(one)), atol=1e-5, rtol=0)
  evals = lambda h: [e["eval/mean/loss"] for e in h if "eval/mean/loss" in e]
  np.testing.assert_allclose(evals(eight), evals(one), atol=1e-5, rtol=0)


def test_cli_bad_table_exits_2_with_one_line_and_no_checkpoint(tmp_path):
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"text": "ok", "labels": [0, 1, 2]}\n{"text": "ragged", "labels": [0, 1]}\n')
  workdir = tmp_path / "run"
  out = subprocess.run([sys.executable, "-m", "mtl_jax.main", "--config=configs/three_task.py:smoke",
                        f"--workdir={workdir}", f"--config.data.train={bad}", "--config.data.validation=0.5"],
                       capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 2, out.stderr[-2000:]
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert lines == [f"error: {bad}:2: field 'labels': expected 3 entries (sentiment, urgency, topic), found 2: [0, 1]"]
  assert not (workdir / checkpoint.LATEST).exists()


def test_cli_predict_jsonl(table, tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(smoke(table, **{"train.steps": 2, "train.eval_every": 2}), workdir)
  (tmp_path / "in.jsonl").write_text('{"text": "parcel delivery asap"}\n{"text": "invoice refund"}\n')
  out = subprocess.run([sys.executable, "-m", "mtl_jax.predict", f"--checkpoint={workdir}",
                        f"--input={tmp_path / 'in.jsonl'}", f"--output={tmp_path / 'out.jsonl'}"],
                       capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
  assert [r["text"] for r in rows] == ["parcel delivery asap", "invoice refund"]
  texts = ["parcel delivery asap", "invoice refund"]
  assert rows == [{"text": t, **r} for t, r in zip(texts, Predictor.load(workdir).predict(texts))]
  stdin = subprocess.run([sys.executable, "-m", "mtl_jax.predict", f"--checkpoint={workdir}"], input="app login\n",
                         capture_output=True, text=True, cwd=REPO)
  assert stdin.returncode == 0 and "sentiment=" in stdin.stdout and "topic=" in stdin.stdout


PREEMPT_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_train import smoke
from mtl_jax.train import train_and_evaluate
train_and_evaluate(smoke({table!r}, **{overrides!r}), {workdir!r})
"""


def test_sigterm_saves_at_a_step_boundary_and_resume_is_exact(table, tmp_path):
  overrides = {"train.steps": 300, "train.eval_every": 150, "train.log_every": 7}
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table, **overrides), full)
  script = PREEMPT_SCRIPT.format(tests=os.path.dirname(__file__), table=table, overrides=overrides, workdir=split)
  proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  metrics, deadline = os.path.join(split, "metrics.jsonl"), time.time() + 120
  while not (os.path.exists(metrics) and os.path.getsize(metrics)) and time.time() < deadline:
    time.sleep(0.05)  # training is under way once the first train-loss event is written
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-2000:]
  stopped = checkpoint.manager(os.path.join(split, checkpoint.LATEST)).latest_step()
  assert 7 <= stopped < 300 and f"SIGTERM: saved step {stopped}" in out
  train_and_evaluate(smoke(table, **overrides), split)  # the same command again resumes and finishes
  assert_same_run(split, full)


def test_resume_from_a_checkpoint_between_log_events_is_exact(table, tmp_path, monkeypatch):
  """checkpoint_every=10 with log_every=7: the step-10 checkpoint carries the half-full train-loss window."""
  overrides = {"train.steps": 16, "train.eval_every": 16, "train.log_every": 7, "train.checkpoint_every": 10}
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(smoke(table, **overrides), full)
  crash_in_step(13, smoke(table, **overrides), split, monkeypatch)
  assert checkpoint.manager(os.path.join(split, checkpoint.LATEST)).latest_step() == 10
  train_and_evaluate(smoke(table, **overrides), split)
  assert_same_run(split, full)


def test_non_finite_loss_stops_with_the_step_and_saves_nothing_after_it(table, tmp_path):
  overrides = {"train.steps": 12, "train.eval_every": 100, "train.log_every": 5, "train.checkpoint_every": 1,
               "train.learning_rate": 1e30, "train.grad_clip": 0.0, "train.warmup_steps": 0}
  with pytest.raises(UserError, match=r"non-finite training loss by step (\d+) \(task losses") as info:
    train_and_evaluate(smoke(table, **overrides), str(tmp_path))
  failed = int(re.search(r"by step (\d+)", str(info.value)).group(1))
  saved = checkpoint.manager(os.path.join(str(tmp_path), checkpoint.LATEST)).latest_step()
  assert saved is None or saved < failed
  if saved is not None:  # what was saved is finite
    params = latest_params(str(tmp_path))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
