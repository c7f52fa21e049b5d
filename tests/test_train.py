"""End to end: train -> evaluate -> checkpoint -> predict, on the smoke config and a small table (faults, resume and
bad input are in tests/reliability/)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from runs import REPO, WORDS, WORDS_LABELS, make_table, read_events, read_history, smoke

from mtl_jax import checkpoint
from mtl_jax.predict import Predictor
from mtl_jax.train import train_and_evaluate


def test_train_evaluate_log_and_predict(table, tmp_path):
  final = train_and_evaluate(smoke(table), str(tmp_path))
  history = read_history(str(tmp_path))
  assert [h["step"] for h in history if "eval/mean/accuracy" in h] == [4, 8]
  assert [h["step"] for h in history if "train/loss" in h] == [2, 4, 6, 8]
  for task in WORDS:
    assert {f"train/{task}/loss", f"eval/{task}/f1_macro"} <= set().union(*history)
  assert {"eval/mean/mcc", "eval/std/mcc", "eval/mean/loss"} <= set(final)

  predictor = Predictor.load(str(tmp_path))
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


def test_cli_predict_jsonl(table, tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(smoke(table, **{"train.steps": 2, "train.eval_every": 2}), workdir)
  (tmp_path / "in.jsonl").write_text('{"text": "parcel delivery asap"}\n{"text": "invoice refund"}\n'
                                     '{"words": ["app", "login", "urgent"]}\n')
  out = subprocess.run([sys.executable, "-m", "mtl_jax.predict", f"--checkpoint={workdir}",
                        f"--input={tmp_path / 'in.jsonl'}", f"--output={tmp_path / 'out.jsonl'}"],
                       capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
  assert [r.get("text") for r in rows] == ["parcel delivery asap", "invoice refund", None]
  texts = ["parcel delivery asap", "invoice refund", "app login urgent"]  # classifiers see a words row joined
  expected = [{"text": t, **r} for t, r in zip(texts, Predictor.load(workdir).predict(texts))]
  expected[2] = {"words": ["app", "login", "urgent"], **{k: v for k, v in expected[2].items() if k != "text"}}
  assert rows == expected
  (tmp_path / "in.conll").write_text("EU B-ORG\n")
  conll = subprocess.run([sys.executable, "-m", "mtl_jax.predict", f"--checkpoint={workdir}", "--format=conll",
                          f"--input={tmp_path / 'in.conll'}"], capture_output=True, text=True, cwd=REPO)
  assert conll.returncode == 2 and conll.stdout == "" and conll.stderr == (
      "error: --format=conll: the checkpoint has no tagging task (its tasks: sentiment, urgency, topic); "
      "predict its texts with JSONL input instead\n")
  stdin = subprocess.run([sys.executable, "-m", "mtl_jax.predict", f"--checkpoint={workdir}"], input="app login\n",
                         capture_output=True, text=True, cwd=REPO)
  assert stdin.returncode == 0 and "sentiment=" in stdin.stdout and "topic=" in stdin.stdout


def test_score_test_false_leaves_the_test_split_unscored(table, tmp_path):
  """`train.score_test=False` (the recipe sweep's runs) skips the test score after training, not the split itself."""
  for score in (True, False):
    workdir = str(tmp_path / str(score))
    final = train_and_evaluate(smoke(table, **{"train.steps": 2, "train.eval_every": 2, "data.test": str(table),
                                               "train.score_test": score}), workdir)
    scored = [k for k in final if k.startswith("test/")] + [k for h in read_history(workdir) for k in h
                                                             if k.startswith("test/")]
    assert bool(scored) == score and "eval/mean/accuracy" in final


@pytest.mark.parametrize("packing", [False, True])
def test_logs_real_token_fraction_and_compiles(table, tokenizer, tmp_path, packing):
  """With one length bucket (64) every batch is padded to 64 positions a row: one text a row, the real share lies
  between the shortest and the longest text's token count over 64 (the tokenizer's own counts); packed, several
  texts share a row, so it is above what any one text a row can reach. One padded length, one compile."""
  train_and_evaluate(smoke(table, **{"train.steps": 6, "train.eval_every": 6, "train.log_every": 3,
                                     "data.length_buckets": (64,), "data.packing": packing}), str(tmp_path))
  counts = [len(tokenizer(json.loads(line)["text"])["input_ids"]) for line in open(table)]
  events = [e for e in read_history(str(tmp_path)) if "train/loss" in e]
  assert [e["step"] for e in events] == [3, 6]
  for e in events:
    if packing:
      assert 2 * max(counts) / 64 < e["train/real_token_fraction"] <= 1
    else:
      assert min(counts) / 64 <= e["train/real_token_fraction"] <= max(counts) / 64
    assert e["train/compiles"] == 1


def test_tensorboard_events_hold_the_logged_scalars_and_the_config(table, tmp_path):
  train_and_evaluate(smoke(table), str(tmp_path))
  scalars = {(e.step, v.tag): v.simple_value for e in read_events(tmp_path / "tensorboard") for v in e.summary.value
             if v.HasField("simple_value")}
  logged = {(h["step"], k): v for h in read_history(str(tmp_path)) for k, v in h.items()
            if k != "step" and v is not None}
  assert set(scalars) == set(logged)
  np.testing.assert_allclose([scalars[k] for k in sorted(logged)], [logged[k] for k in sorted(logged)], rtol=1e-6)
  texts = [v.tensor.string_val[0].decode() for e in read_events(tmp_path / "tensorboard") for v in e.summary.value
           if v.tag.startswith("config")]
  assert texts and '"label_order"' in texts[0]


def test_a_second_seed_reuses_the_first_seeds_compiled_train_step(tmp_path):
  """The dropout key is an argument of the jitted step, not a constant compiled into it: with JAX's persistent cache
  (mtl_jax.cli turns it on), a run with another seed finds every program it needs there and compiles nothing new."""
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla")}  # its own, empty (conftest.py: 0 s min)
  cached = []
  for seed in (0, 1):
    subprocess.run([sys.executable, "-m", "mtl_jax.main", "--config=configs/three_task.py:smoke",
                    f"--workdir={tmp_path / str(seed)}", f"--config.seed={seed}", "--config.train.steps=2"],
                   cwd=REPO, env=env, check=True, capture_output=True)
    cached.append(sorted(os.listdir(tmp_path / "xla")))
  assert cached[0] and cached[1] == cached[0]
