"""Task kinds: each registered kind implements the whole interface, and its device outputs are what numpy computes."""

import inspect
import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from runs import REPO
from runs import evaluate_cli as eval_cli
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score

from mtl_jax import kinds
from mtl_jax.kinds.base import Kind
from mtl_jax.predict import Predictor, format_readable
from mtl_jax.tasks import Layout, Task

DEFAULTS = ("write_files", "width", "target_width", "loss", "parse")  # the base class's serve most kinds
REQUIRED = [name for name, f in inspect.getmembers(Kind, inspect.isfunction) if name not in DEFAULTS]


@pytest.mark.parametrize("kind", kinds.KINDS.values(), ids=kinds.NAMES)
def test_every_kind_implements_the_interface(kind):
  missing = [name for name in REQUIRED if getattr(type(kind), name) is getattr(Kind, name)]
  assert not missing, f"{kind.name} leaves {missing} to the base class"
  assert kind.name and kind.metric_names and set(kind.shown) <= set(kind.metric_names)
  assert kind.salt not in [k.salt for k in kinds.KINDS.values() if k is not kind]  # its own dropout stream


def test_outputs_are_softmax_per_group_and_argmax_per_task():
  rng = np.random.default_rng(0)
  groups = [rng.normal(size=(4, 7, k)).astype(np.float32) for k in (3, 2)]
  probs = np.asarray(kinds.KINDS["classification"].outputs([jnp.asarray(g[:, 0]) for g in groups]))
  softmax = lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)
  np.testing.assert_allclose(probs, np.concatenate([softmax(g[:, 0]) for g in groups], -1), rtol=1e-5, atol=1e-7)
  tags = np.asarray(kinds.KINDS["tagging"].outputs([jnp.asarray(g) for g in groups]))
  np.testing.assert_array_equal(tags, np.stack([g.argmax(-1) for g in groups], -1))


def test_task_output_is_the_tasks_share_of_its_kinds_store():
  layout = Layout((Task("a", "classification", ("x", "y")), Task("p", "tagging", ("N", "V", "D")),
                   Task("b", "classification", ("u", "v", "w")), Task("q", "tagging", ("B", "I"))))
  assert kinds.of_layout(layout) == (kinds.KINDS["classification"], kinds.KINDS["tagging"])
  probs = np.arange(10, dtype=np.float32).reshape(2, 5)
  np.testing.assert_array_equal(kinds.KINDS["classification"].task_output(probs, layout, 2), probs[:, 2:5])
  words = [np.array([[0, 1], [2, 0]]), np.array([[1, 1]])]  # per example: [n_words, n_tagging_tasks]
  got = kinds.KINDS["tagging"].task_output(words, layout, 3)
  assert [list(g) for g in got] == [[1, 0], [1]]


KINDS_CONFIG = '''
from configs import three_task


def get_config(arg=""):
  c = three_task.get_config(arg)
  c.tasks.urgency = dict(kind="regression", loss="huber")
  c.tasks.topic = dict(kind="multilabel", labels=("billing", "technical", "shipping", "account"), threshold=0.4)
  return c
'''
TOPICS = {"billing": "invoice refund", "technical": "app login", "shipping": "parcel delivery",
          "account": "password profile"}


def write_mixed_table(path, n, seed):
  """Sentiment (a class), urgency (a score in [0, 1], signalled by 'urgent' words) and topics (any subset)."""
  rng = np.random.default_rng(seed)
  with open(path, "w") as f:
    for i in range(n):
      sentiment, urgency = int(rng.integers(3)), int(rng.integers(4))
      topics = [t for t in TOPICS if rng.random() < 0.4]
      text = " ".join([("awful", "a question", "thanks")[sentiment], *(TOPICS[t] for t in topics), f"ticket {i}"])
      pair = {"text_pair": " ".join(["urgent"] * urgency)} if urgency else {}  # urgency is read from the pair
      f.write(json.dumps({"text": text, **pair, "labels": [sentiment, urgency / 3 if i % 6 else None,
                                                           topics if i % 5 else None]}) + "\n")
  return str(path)


def test_multilabel_regression_and_pairs_train_evaluate_and_predict_through_the_cli(tmp_path):
  """A table mixing classification, regression and multilabel tasks, some rows text pairs, trains through
  `python -m mtl_jax.main` (one batch, one encoder pass); `evaluate`'s scores equal scikit-learn's and scipy's on
  what `python -m mtl_jax.predict` gives for the same rows (so both read the pairs alike)."""
  config = tmp_path / "kinds.py"
  config.write_text(KINDS_CONFIG)
  train, validation = write_mixed_table(tmp_path / "t.jsonl", 160, 0), write_mixed_table(tmp_path / "v.jsonl", 60, 1)
  workdir = tmp_path / "run"
  subprocess.run([sys.executable, "-m", "mtl_jax.main", f"--config={config}:smoke", f"--workdir={workdir}",
                  f"--config.data.train={train}", f"--config.data.validation={validation}"], cwd=REPO, check=True,
                 capture_output=True, env={**os.environ, "PYTHONPATH": REPO})
  logged = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  assert any("train/topic/loss" in r and "train/urgency/loss" in r for r in logged)

  out = tmp_path / "eval"
  eval_cli(f"--checkpoint={workdir}", "--split=validation", f"--output={out}")
  scores = json.loads((out / "metrics.json").read_text())
  rows = [json.loads(line) for line in open(validation)]
  subprocess.run([sys.executable, "-m", "mtl_jax.predict", f"--checkpoint={workdir}", f"--input={validation}",
                  f"--output={tmp_path / 'out.jsonl'}"], cwd=REPO, check=True, capture_output=True)
  results = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
  assert [(r["text"], r.get("text_pair")) for r in results] == [(r["text"], r.get("text_pair")) for r in rows]
  alone = Predictor.load(str(workdir)).predict([r["text"] for r in rows])  # the pairs count: without them, other scores
  assert all((a["urgency"]["value"] != r["urgency"]["value"]) == ("text_pair" in row)
             for a, r, row in zip(alone, results, rows))
  scored = [i for i, r in enumerate(rows) if r["labels"][2] is not None]
  truth = np.array([[t in rows[i]["labels"][2] for t in TOPICS] for i in scored])
  probs = np.array([[results[i]["topic"]["probs"][t] for t in TOPICS] for i in scored])
  assert [results[i]["topic"]["labels"] for i in scored] == [[t for t in TOPICS if results[i]["topic"]["probs"][t]
                                                               >= 0.4] for i in scored]
  predicted = probs >= 0.4
  assert scores["eval/topic/f1_micro"] == pytest.approx(f1_score(truth, predicted, average="micro", zero_division=0),
                                                        abs=1e-4)
  assert scores["eval/topic/f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0),
                                                        abs=1e-4)
  assert scores["eval/topic/subset_accuracy"] == pytest.approx(np.mean(np.all(truth == predicted, 1)), abs=1e-4)
  assert scores["eval/topic/auroc_macro"] == pytest.approx(roc_auc_score(truth, probs), abs=1e-3)
  scored = [i for i, r in enumerate(rows) if r["labels"][1] is not None]
  y, value = np.array([rows[i]["labels"][1] for i in scored]), np.array([results[i]["urgency"]["value"] for i in scored])
  assert scores["eval/urgency/pearson"] == pytest.approx(stats.pearsonr(y, value)[0], abs=1e-4)
  assert scores["eval/urgency/spearman"] == pytest.approx(stats.spearmanr(y, value)[0], abs=1e-4)
  assert scores["eval/urgency/mse"] == pytest.approx(np.mean((y - value) ** 2), abs=1e-5)
  assert scores["eval/urgency/main"] == scores["eval/urgency/pearson"]
  readable = format_readable(rows[0]["text"], {task: results[0][task] for task in ("sentiment", "urgency", "topic")})
  assert f"urgency={results[0]['urgency']['value']:.3f}" in readable and "topic=" in readable
