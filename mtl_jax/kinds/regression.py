"""Regression of a whole text: one score per example, read from the pooled features (STS-B style similarity,
ratings).

A table row gives the task's score as a number (null: not labelled; -1 is a score here). The loss is the squared
error (`loss: "mse"`, default) or the Huber loss with delta 1 (`loss: "huber"`); metrics: Pearson and Spearman
correlation (the headline is Pearson), MSE and MAE.
"""

import math

import jax.numpy as jnp
import optax

from mtl_jax import metrics as metrics_lib
from mtl_jax import report
from mtl_jax.kinds.base import PooledText, bad_value, labelled_rows, scored_weights

LOSSES = ("mse", "huber")


class Regression(PooledText):
  name, salt, activation = "regression", 4, "identity"
  corpus_formats = ("csv", "jsonl", "hf")  # a table's column, or a label column of a CSV / JSONL / hf corpus
  labels_from_data = False  # a score has none
  min_labels = 0
  options = ("loss",)
  metric_names = metrics_lib.REGRESSION_NAMES
  shown = {"pearson": "pearson", "spearman": "spearman", "mse": "mse"}

  def main_metric(self, task) -> str:
    return "pearson"

  def width(self, task):
    return 1

  def target_width(self, task):
    return 1

  def parse(self, value, task, where, field):
    if value is None or (isinstance(value, str) and value.strip() in ("", "null")):
      return -1, [0.0]
    number = value
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
      try:
        number = float(value)  # a JSON integer of 400 digits: OverflowError
      except (ValueError, OverflowError):
        number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
      raise bad_value(where, field, task, "expected a finite number, or null for no score", value)
    return 0, [float(number)]

  def loss(self, logits, batch, t, layout):
    w = scored_weights(*self.targets(batch, t))
    pred, target = logits[:, 0], self.task_targets(batch, t, layout)[:, 0]
    error = optax.huber_loss(pred, target, delta=1.0) if layout.tasks[t].loss == "huber" else (pred - target) ** 2
    return jnp.sum(w * error), jnp.sum(w)

  def outputs(self, groups):
    return jnp.concatenate(groups, axis=-1)

  def metrics(self, data, output, t, layout):
    labelled = labelled_rows(data, t)
    return metrics_lib.regression_metrics(data.targets[labelled, layout.target_offsets[t]], output[labelled, 0])

  def prediction(self, task, output, rows, words):
    return {"value": round(float(output[rows[0], 0]), 6)}

  def details(self, data, output, t, layout):
    labelled = labelled_rows(data, t)
    return {"scores": self.metrics(data, output, t, layout), "count": f"{int(labelled.sum())} labelled examples"}

  def report_section(self, task, detail, split):
    return [f"## {task.name}: scores", "", *report.md_table(["metric", "value"], list(detail["scores"].items())), ""]


KIND = Regression()
