"""python -m mtl_jax.evaluate: a checkpoint scored on a split of its own config, checked against what training logged,
scikit-learn (per class, confusion matrix, per tag) and seqeval (per span type) on the Predictor's predictions."""

import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from runs import REPO, make_table, read_history, smoke
from runs import evaluate_cli as cli
from seqeval.metrics import classification_report as seqeval_report
from sklearn.metrics import classification_report, confusion_matrix

from mtl_jax import checkpoint, corpora, evaluate, schema
from mtl_jax.corpora import load_data
from mtl_jax.data import read_table, split_validation
from mtl_jax.errors import UserError
from mtl_jax.predict import Predictor
from mtl_jax.tasks import Layout, Task, layout_from_config
from mtl_jax.train import train_and_evaluate


def report_tables(text):
  """{heading: (column names, {first cell: [the row's numbers]})} for every markdown table of report.md, keyed by
  the heading above it up to its colon ("Summary", "sentiment", "sentiment confusion matrix" for "### ...")."""
  tables, heading, rows = {}, None, None
  for line in text.splitlines():
    if line.startswith("#"):
      heading = line.lstrip("#").strip().split(":")[0] + (" confusion matrix" if "confusion" in line else "")
      rows = None
    elif line.startswith("|"):
      cells = [c.strip() for c in line.strip("|").split("|")]
      if rows is None:
        rows = {}
        tables[heading] = (cells[1:], rows)
      elif not cells[0].startswith("---"):
        rows[cells[0]] = [float("nan") if c == "n/a" else float(c) for c in cells[1:]]
  return tables


def logged(workdir, prefix):
  """The `prefix/*` metrics training wrote for the best checkpoint's step (validation), or at the end (test)."""
  _, step = checkpoint.find(workdir)
  rows = [h for h in read_history(workdir) if f"{prefix}/mean/main" in h]
  row = next(h for h in rows if h["step"] == step) if prefix == "eval" else rows[-1]
  return {k: v for k, v in row.items() if k != "step"}


def assert_same_metrics(metrics_json, history):
  assert set(metrics_json) == set(history)
  for k, v in history.items():
    assert (metrics_json[k] is None) == (v is None), k
    if v is not None:
      assert metrics_json[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


def assert_rows(table, expected, names):
  """Rows (precision, recall, f1, support) of a report table against a scikit-learn / seqeval report dict."""
  columns, table = table
  assert columns == ["precision", "recall", "f1", "support"] and set(table) == set(names)
  for name, key in names.items():
    e = expected[key]
    np.testing.assert_allclose(table[name], [e["precision"], e["recall"], e["f1-score"], e["support"]], atol=5e-5,
                               err_msg=name)


@pytest.fixture(scope="module")
def table_run(table, tmp_path_factory):
  """The three-task smoke run of tests/test_train.py (same config: the XLA cache serves its compilations)."""
  workdir = str(tmp_path_factory.mktemp("table_run"))
  train_and_evaluate(smoke(table), workdir)
  return workdir


def test_validation_equals_training_log_and_sklearn(table, table_run, capsys):
  cli(f"--checkpoint={os.path.join(table_run, checkpoint.BEST)}", "--split=validation", "--batch_size=64")
  out = os.path.join(table_run, "eval_validation")  # the default --output: beside best/ in the workdir
  assert sorted(os.listdir(out)) == ["confusion_sentiment.png", "confusion_topic.png", "confusion_urgency.png",
                                     "metrics.json", "report.md"]
  report = open(os.path.join(out, "report.md")).read()
  assert capsys.readouterr().out.strip() == report.strip()
  _, step = checkpoint.find(table_run)
  assert f"/best/{step}` (step {step})" in report and "- split: validation" in report and "- examples: 40" in report
  metrics = json.loads(open(os.path.join(out, "metrics.json")).read())
  assert_same_metrics(metrics, logged(table_run, "eval"))

  tables = report_tables(report)
  columns, summary = tables["Summary"]
  assert columns[:4] == ["main", "loss", "accuracy", "balanced_accuracy"] and "auroc_macro" in columns
  for task in ("sentiment", "urgency", "topic", "mean", "std"):
    for column, value in zip(columns, summary[task]):
      assert value == pytest.approx(metrics[f"eval/{task}/{column}"], abs=5e-5), (task, column)

  # Per class and confusion matrices from the Predictor's labels on the same validation rows, by scikit-learn.
  config = smoke(table)
  layout = layout_from_config(config)
  validation = split_validation(read_table(config.data.train, layout), config.data.validation, config.seed)[1]
  predicted = Predictor.load(table_run).predict(validation.texts)
  for t, task in enumerate(layout.tasks):
    rows = np.flatnonzero(validation.labels[:, t] >= 0)
    gold = validation.labels[rows, t]
    pred = np.array([task.labels.index(predicted[i][task.name]["label"]) for i in rows])
    expected = classification_report(gold, pred, labels=range(task.num_classes), target_names=task.labels,
                                     zero_division=0, output_dict=True)
    assert_rows(tables[task.name], expected, {name: name for name in task.labels})
    columns, counts = tables[f"{task.name} confusion matrix"]
    assert columns == list(task.labels) and list(counts) == list(task.labels)
    np.testing.assert_array_equal(list(counts.values()), confusion_matrix(gold, pred, labels=range(task.num_classes)))
    image = matplotlib.image.imread(os.path.join(out, f"confusion_{task.name}.png"))
    assert image.ndim == 3 and image.shape[2] == 4 and min(image.shape[:2]) > 250, image.shape
    assert f"![{task.name} confusion matrix, validation](confusion_{task.name}.png)" in report


def test_split_the_config_lacks_is_one_line_exit_2(table_run):
  out = subprocess.run([sys.executable, "-m", "mtl_jax.evaluate", f"--checkpoint={table_run}", "--split=test"],
                       capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 2 and out.stdout == ""
  assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: --split=test: ")
  assert "config.data.test" in out.stderr and "it has: train, validation" in out.stderr


def test_test_split_equals_training_log_seqeval_and_sklearn(pos_chunk_run, shared_data, tmp_path, capsys):
  config, workdir, _ = pos_chunk_run
  cli(f"--checkpoint={workdir}", f"--output={tmp_path}", f"--data_root={shared_data}")  # --split defaults to test
  report = (tmp_path / "report.md").read_text()
  assert_same_metrics(json.loads((tmp_path / "metrics.json").read_text()), logged(workdir, "test"))
  assert "conll2000/test.txt`, downsampled to 0.02" in report and "en_ewt-ud-test.conllu" in report
  assert not [f for f in os.listdir(tmp_path) if f.endswith(".png")]  # no classification task

  # The Predictor's tags for every test sentence, scored by seqeval (span types) and scikit-learn (UPOS over words).
  tables, predictor = report_tables(report), Predictor.load(workdir)
  for corpus in corpora.group_tasks(config, list(config.tasks.keys())):
    corpora.load_corpus(corpus, config, config.seed)
    (task,) = corpus.tasks
    records = corpus.splits["test"]
    gold = [list(tags[task]) for _, tags, _ in records]
    pred = [r[task]["tags"] for r in predictor.predict([list(words) for words, _, _ in records])]
    if task == "chunk":
      expected = seqeval_report(gold, pred, output_dict=True, zero_division=0)
      types = {name: name for name in expected if not name.endswith(" avg")} | {"micro avg": "micro avg"}
      assert {"NP", "VP", "PP"} <= set(types)
      assert_rows(tables["chunk"], expected, types)
    else:
      labels = predictor.layout.tasks[predictor.layout.names.index(task)].labels
      expected = classification_report(sum(gold, []), sum(pred, []), labels=list(labels), zero_division=0,
                                        output_dict=True)
      assert_rows(tables["pos"], expected, {name: name for name in labels})


def test_layout_of_other_data_is_named():
  saved = Layout((Task("topic", "classification", ("a", "b")),
                  Task("ner", "tagging", ("O", "B-X", "I-X"), scheme="IOB2")))
  evaluate.check_layout(saved, saved)
  other = Layout((saved.tasks[0], Task("ner", "tagging", ("O", "B-Y", "I-Y"), scheme="IOB2")))
  with pytest.raises(UserError, match=r"^task 'ner': the data gives labels \['O', 'B-Y', 'I-Y'\]"):
    evaluate.check_layout(saved, other)
  with pytest.raises(UserError, match="the data has tasks"):
    evaluate.check_layout(saved, Layout(saved.tasks[:1]))


def test_table_config_test_file(table, tokenizer, tmp_path):
  test_file = make_table(tmp_path / "test.jsonl", 24, seed=5)
  config = smoke(table, **{"data.test": test_file})
  layout, _, _, test = load_data(config, tokenizer, 64)
  assert len(test) == 24 and test.labels.shape == (24, 3)
  assert evaluate.check_split(config, "test", layout.names) == {"table": f"`{test_file}`"}
  assert load_data(smoke(table), tokenizer, 64)[3] is None
  with pytest.raises(UserError, match=r"^config.data.test: expected a table file .* found '0.1'"):
    schema.validate(smoke(table, **{"data.test": "0.1"}))
