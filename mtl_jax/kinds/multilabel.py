"""Multi-label classification of a whole text: an independent sigmoid per label, read from the pooled features.

A table row gives a task's labels as a list of names or ids (`[]`: none applies; -1 / null: not labelled for the
task); a label listed twice is refused, since a multi-hot vector ([1, 0, 1]) would otherwise read as ids. The loss
is binary cross-entropy averaged over the task's labels, then over labelled examples. A label is predicted when its
probability reaches the task's `threshold` (default 0.5); metrics: micro and macro F1, micro precision and recall,
subset accuracy, macro AUROC; the report has a table per label.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtl_jax import metrics as metrics_lib
from mtl_jax import report
from mtl_jax.kinds.base import PooledText, bad_value, labelled_rows, scored_weights


class Multilabel(PooledText):
  name, salt, activation = "multilabel", 3, "sigmoid"
  corpus_formats = ("csv", "jsonl", "hf")  # a table's column, or a label column of a CSV / JSONL / hf corpus
  labels_from_data = False  # the config names them
  min_labels = 1
  options = ("label_smoothing", "threshold")
  metric_names = metrics_lib.MULTILABEL_NAMES
  shown = {"f1_micro": "f1_micro", "subset_accuracy": "subset_acc"}

  def main_metric(self, task) -> str:
    return "f1_micro"

  def target_width(self, task):
    return len(task.labels)

  def parse(self, value, task, where, field):
    expected = f"expected a list of label names of {list(task.labels)} or ids, [] for none, or -1/null"
    if isinstance(value, str) and value.strip().startswith("["):  # a CSV cell holding a JSON list
      try:
        value = json.loads(value)
      except json.JSONDecodeError:
        raise bad_value(where, field, task, expected, value) from None
    if value is None or (isinstance(value, str) and value.strip() in ("", "-1", "null")) or (
        value == -1 and not isinstance(value, bool)):
      return -1, [0.0] * len(task.labels)
    if not isinstance(value, list):
      raise bad_value(where, field, task, expected, value)
    ids = [task.labels.index(v) if isinstance(v, str) and v in task.labels else v for v in value]
    if any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(task.labels) for k in ids):
      raise bad_value(where, field, task, expected, value)
    if len(set(ids)) < len(ids):  # [1, 0, 1] is more likely a multi-hot vector than ids
      raise bad_value(where, field, task, "expected each label once (label names or ids, not a multi-hot vector)",
                      value)
    return 0, [float(k in ids) for k in range(len(task.labels))]

  def loss(self, logits, batch, t, layout):
    w = scored_weights(*self.targets(batch, t))
    smoothing = layout.tasks[t].label_smoothing
    target = self.task_targets(batch, t, layout) * (1 - smoothing) + smoothing / 2
    return jnp.sum(w * optax.sigmoid_binary_cross_entropy(logits, target).mean(-1)), jnp.sum(w)

  def outputs(self, groups):
    return jnp.concatenate([jax.nn.sigmoid(g) for g in groups], axis=-1)

  def metrics(self, data, output, t, layout):
    task = layout.tasks[t]
    labelled = labelled_rows(data, t)
    return metrics_lib.multilabel_metrics(truth(data, t, layout)[labelled], output[labelled], task.threshold)

  def prediction(self, task, output, rows, words):
    p = output[rows[0]]
    return {"labels": [name for name, x in zip(task.labels, p) if x >= task.threshold],
            "probs": {name: round(float(x), 6) for name, x in zip(task.labels, p)}}

  def details(self, data, output, t, layout):
    task = layout.tasks[t]
    labelled = labelled_rows(data, t)
    per = metrics_lib.per_label_scores(truth(data, t, layout)[labelled], output[labelled], task.threshold)
    scores = {name: {key: per[key][k].item() for key in per} for k, name in enumerate(task.labels)}
    return {"scores": scores, "count": f"{int(labelled.sum())} labelled examples"}

  def report_section(self, task, detail, split):
    rows = [[name, s["precision"], s["recall"], s["f1"], s["support"], s["auroc"]]
            for name, s in detail["scores"].items()]
    return [f"## {task.name}: per label (threshold {task.threshold})", "",
            *report.md_table(["label", "precision", "recall", "f1", "support", "auroc"], rows), ""]


def truth(data, t: int, layout) -> np.ndarray:
  """[N, K] booleans: which of task t's labels each example has (meaningful on its labelled rows)."""
  return data.targets[:, layout.target_columns(t)] > 0.5


KIND = Multilabel()
