"""Classification of a whole text: a softmax over classes per task, read from the pooled text features.

Evaluation gathers every class's probability per example ([N, sum K]); a task's rows without a label (-1, or
weight 0) are left out of its metrics. The report has a per-class table, the confusion matrix and its plot.
"""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax import metrics as metrics_lib
from mtl_jax import report
from mtl_jax.kinds.base import PooledText, bad_value, labelled_rows


class Classification(PooledText):
  name, salt, activation = "classification", 1, "softmax"
  metric_names = metrics_lib.METRIC_NAMES
  shown = {"accuracy": "acc", "balanced_accuracy": "bal_acc", "f1_macro": "f1_macro", "mcc": "mcc",
           "auroc_macro": "auroc"}

  def main_metric(self, task) -> str:
    return "accuracy"

  options = ("label_smoothing",)

  def parse(self, value, task, where, field):
    return parse_class(value, task, where, field), []

  def outputs(self, groups):
    return jnp.concatenate([jax.nn.softmax(g, axis=-1) for g in groups], axis=-1)

  def metrics(self, data, output, t, layout):
    labelled = labelled_rows(data, t)
    return metrics_lib.classification_metrics(data.labels[labelled, t], output[labelled])

  def prediction(self, task, output, rows, words):
    p = output[rows[0]]  # a split sentence's text labels sit on its first window
    return {"label": task.labels[int(np.argmax(p))],
            "probs": {name: round(float(x), 6) for name, x in zip(task.labels, p)}}

  def details(self, data, output, t, layout):
    task = layout.tasks[t]
    labelled = labelled_rows(data, t)
    y_true, y_pred = data.labels[labelled, t], np.argmax(output[labelled], axis=1)
    cm = metrics_lib.confusion_matrix(y_true, y_pred, task.num_classes)
    return {"scores": report.per_class(cm, task.labels), "confusion": cm, "count": f"{len(y_true)} labelled examples"}

  def report_section(self, task, detail, split):
    confusion = [[label, *map(int, row)] for label, row in zip(task.labels, detail["confusion"])]
    return [f"## {task.name}: per class", "", *report.scores_table("class", detail["scores"]), "",
            f"### {task.name}: confusion matrix (rows true, columns predicted)", "",
            *report.md_table(["true \\ predicted", *task.labels], confusion), "",
            f"![{task.name} confusion matrix, {split}]({report.confusion_file(task.name)})", ""]

  def write_files(self, directory, task, detail, split):
    report.plot_confusion(detail["confusion"], task.labels, f"{task.name} ({split})",
                          os.path.join(directory, report.confusion_file(task.name)))


def parse_class(value, task, where: str, field: str) -> int:
  """One label entry -> class id, or -1 for no label."""
  expected = f"expected a class id in 0..{task.num_classes - 1}, a label name of {list(task.labels)}, or -1/null"
  if value is None or value == "":
    return -1
  if isinstance(value, str):
    if value in task.labels:
      return task.labels.index(value)
    if not re.fullmatch(r"-?\d+", value.strip()):
      raise bad_value(where, field, task, expected, value)
    value = int(value)
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < task.num_classes:
    raise bad_value(where, field, task, expected, value)
  return value


KIND = Classification()
