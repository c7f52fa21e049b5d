"""The interface of a task kind; `classification` and `tagging` implement it.

Conventions: `t` is a task's position in the layout; a kind's head output holds its tasks' logits side by side
(`heads.split_groups`); on the host, a kind's `store` holds what evaluation gathered for every example, and
`task_output(store, layout, t)` is task t's share of it, the input of `metrics`, `prediction` and `details`.
"""

import jax
import numpy as np


class Kind:
  name: str  # the `kind` of a task in the config and in checkpoint meta
  salt: int  # the dropout stream (fold_in(rng, salt)) of the head's input
  reads_words: bool = False  # its examples are word sequences whose first sub-tokens are scored
  # how its logits become what it predicts, for code outside mtl_jax (the export): "softmax" over each task's slice,
  # "sigmoid" per output, or "identity" (the logits as they are); every kind names its own
  activation: str
  schemes: tuple[str, ...] = ()  # the span schemes its tasks may name
  metric_names: tuple[str, ...] = ()  # what `metrics` returns
  shown: dict[str, str] = {}  # the metrics of the console's eval lines, by their short names there

  def main_metric(self, task) -> str:
    """The task's headline score (`main` in the metrics)."""
    raise NotImplementedError

  def features(self, hidden: jax.Array, batch: dict, pooling: str) -> jax.Array:
    """What the head reads from the encoder's hidden states [B, L, H]."""
    raise NotImplementedError

  def targets(self, batch: dict, t: int) -> tuple[jax.Array, jax.Array]:
    """(labels, weights broadcastable to them) of task t in a batch; label -1 is not scored."""
    raise NotImplementedError

  def outputs(self, groups: list[jax.Array]) -> jax.Array:
    """On device, from its tasks' logits: what evaluation and prediction gather."""
    raise NotImplementedError

  def empty(self, count: int, width: int):
    """The host store for `count` examples; `width` is the head's output size."""
    raise NotImplementedError

  def gather(self, store, out: np.ndarray, data, idx: np.ndarray) -> None:
    """Puts one batch's outputs (rows idx of `data`, padding rows after them) into the store."""
    raise NotImplementedError

  def task_output(self, store, layout, t: int):
    raise NotImplementedError

  def metrics(self, data, output, t: int, task) -> dict[str, float]:
    """Scores of task t over the examples labelled for it."""
    raise NotImplementedError

  def prediction(self, task, output, rows: np.ndarray, words: list[str] | None) -> dict:
    """The predict result of one input, made of the examples `rows` (its windows, in order)."""
    raise NotImplementedError

  def details(self, data, output, t: int, task) -> dict:
    """Per class / type / tag scores for the evaluation report; "count" says what was scored."""
    raise NotImplementedError

  def report_section(self, task, detail: dict, split: str) -> list[str]:
    """Markdown lines of the task's section in report.md."""
    raise NotImplementedError

  def write_files(self, directory: str, task, detail: dict, split: str) -> None:
    """Files of the report beside report.md (none by default)."""
