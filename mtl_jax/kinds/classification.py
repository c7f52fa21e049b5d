"""Classification of a whole text: a softmax over classes per task, read from the pooled text features.

Evaluation gathers every class's probability per example ([N, sum K]); a task's rows without a label (-1, or
weight 0) are left out of its metrics. The report has a per-class table, the confusion matrix and its plot.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax import heads, report
from mtl_jax import metrics as metrics_lib
from mtl_jax.kinds.base import Kind


class Classification(Kind):
  name, salt, activation = "classification", 1, "softmax"
  metric_names = metrics_lib.METRIC_NAMES
  shown = {"accuracy": "acc", "balanced_accuracy": "bal_acc", "f1_macro": "f1_macro", "mcc": "mcc",
           "auroc_macro": "auroc"}

  def main_metric(self, task) -> str:
    return "accuracy"

  def features(self, hidden, batch, pooling):
    return heads.pool(hidden, batch["attention_mask"], pooling)

  def targets(self, batch, t):
    return batch["labels"][:, t], batch["weights"][:, t]

  def outputs(self, groups):
    return jnp.concatenate([jax.nn.softmax(g, axis=-1) for g in groups], axis=-1)

  def empty(self, count, width):
    return np.zeros((count, width), np.float32)

  def gather(self, store, out, data, idx):
    store[idx] = out[:len(idx)]

  def task_output(self, store, layout, t):
    return store[:, layout.offsets[t]:layout.offsets[t] + layout.tasks[t].num_classes]

  def metrics(self, data, output, t, task):
    labelled = labelled_rows(data, t)
    return metrics_lib.classification_metrics(data.labels[labelled, t], output[labelled])

  def prediction(self, task, output, rows, words):
    p = output[rows[0]]  # a split sentence's text labels sit on its first window
    return {"label": task.labels[int(np.argmax(p))],
            "probs": {name: round(float(x), 6) for name, x in zip(task.labels, p)}}

  def details(self, data, output, t, task):
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


def labelled_rows(data, t: int) -> np.ndarray:
  """The rows with a label for task position `t`: the rows its loss and metrics count."""
  return (data.labels[:, t] >= 0) & (data.weights[:, t] > 0)


KIND = Classification()
