"""The interface of a task kind; `classification` and `tagging` implement it.

Conventions: `t` is a task's position in the layout; a kind's head output holds its tasks' logits side by side
(`heads.split_groups`); on the host, a kind's `store` holds what evaluation gathered for every example, and
`task_output(store, layout, t)` is task t's share of it, the input of `metrics`, `prediction` and `details`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtl_jax import heads
from mtl_jax.errors import UserError


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
  min_labels: int = 2  # a task of this kind names at least this many labels
  options: tuple[str, ...] = ()  # the task fields (besides kind, labels, weight) this kind reads
  corpus_formats: tuple[str, ...] | None = None  # the corpus formats its tasks may read (None: any)
  labels_from_data: bool = True  # a corpus task without configured labels takes those its training data has

  def width(self, task) -> int:
    """The task's outputs in the kind's head: a logit per label."""
    return len(task.labels)

  def target_width(self, task) -> int:
    """Float targets per example in a batch's `targets` (none: the label id in `labels` / `tags` says it all)."""
    return 0

  def parse(self, value, task, where: str, field: str) -> tuple[int, list[float]]:
    """One label cell of the task (a table's, or a CSV / JSONL corpus's label column) -> (label id, or 0 when the
    targets hold the label, or -1: no label; its float targets)."""
    raise UserError(f"{where}: field {field} (task '{task.name}'): a {self.name} task reads its own corpus, not a "
                    "table column")

  def loss(self, logits: jax.Array, batch: dict, t: int, layout) -> tuple[jax.Array, jax.Array]:
    """Task t's (loss sum, weight sum) over the scored items of a batch; its logits [..., width]."""
    labels, weights = self.targets(batch, t)
    return cross_entropy(logits, labels, weights, layout.tasks[t])

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

  def gather(self, store, out: np.ndarray, data, idx: np.ndarray, where: tuple) -> None:
    """Puts one batch's outputs for examples idx of `data` into the store; `where` (`EvalBatch.positions`): each
    example's text row in pooled outputs, its row and first token in per-token outputs."""
    raise NotImplementedError

  def task_output(self, store, layout, t: int):
    raise NotImplementedError

  def metrics(self, data, output, t: int, layout) -> dict[str, float]:
    """Scores of task t over the examples labelled for it."""
    raise NotImplementedError

  def prediction(self, task, output, rows: np.ndarray, words: list[str] | None) -> dict:
    """The predict result of one input, made of the examples `rows` (its windows, in order)."""
    raise NotImplementedError

  def details(self, data, output, t: int, layout) -> dict:
    """Per class / type / tag scores for the evaluation report; "count" says what was scored."""
    raise NotImplementedError

  def report_section(self, task, detail: dict, split: str) -> list[str]:
    """Markdown lines of the task's section in report.md."""
    raise NotImplementedError

  def write_files(self, directory: str, task, detail: dict, split: str) -> None:
    """Files of the report beside report.md (none by default)."""


def packed(batch: dict) -> bool:
  """Whether the batch is packed (input_pipeline.make_packed_batch): its per-example fields are [B, slots, ...]."""
  return batch["labels"].ndim == 3


def per_text(batch: dict, key: str) -> jax.Array:
  """A per-example field of the batch, one row per text ([B, ...], or a packed batch's [B * slots, ...])."""
  x = batch[key]
  return x.reshape(-1, *x.shape[2:]) if packed(batch) else x


def scored_weights(labels: jax.Array, weights: jax.Array) -> jax.Array:
  """Each item's weight in its task's loss: its weight where it has a label, 0 where it has none (-1)."""
  return jnp.where(labels >= 0, weights, 0.0)


def cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array, task) -> tuple[jax.Array, jax.Array]:
  """logits [..., K], labels [...] (-1 = not scored), weights broadcastable to labels -> (loss sum, weight sum), with
  the task's label smoothing."""
  w = scored_weights(labels, weights)
  target = optax.smooth_labels(jax.nn.one_hot(jnp.maximum(labels, 0), task.num_classes), task.label_smoothing)
  return jnp.sum(w * optax.softmax_cross_entropy(logits, target)), jnp.sum(w)


class PooledText(Kind):
  """A kind that reads the pooled text features and keeps a float row of outputs per example (classification,
  multilabel, regression); a task's label id sits in `labels[:, t]` (-1: none), its float targets, if any, in
  `targets`."""

  def features(self, hidden, batch, pooling):
    return heads.pool(hidden, batch["attention_mask"], pooling, batch["labels"].shape[1] if packed(batch) else 0)

  def targets(self, batch, t):
    return per_text(batch, "labels")[:, t], per_text(batch, "weights")[:, t]

  def task_targets(self, batch: dict, t: int, layout) -> jax.Array:
    """Task t's float targets [texts, target_width] in a batch."""
    return per_text(batch, "targets")[:, layout.target_columns(t)]

  def empty(self, count, width):
    return np.zeros((count, width), np.float32)

  def gather(self, store, out, data, idx, where):
    store[idx] = out[where[0]]

  def task_output(self, store, layout, t):
    return store[:, layout.offsets[t]:layout.offsets[t] + layout.tasks[t].width]


def labelled_rows(data, t: int) -> np.ndarray:
  """The rows with a label for task position `t`: the rows its loss and metrics count."""
  return (data.labels[:, t] >= 0) & (data.weights[:, t] > 0)


def bad_value(where: str, field: str, task, expected: str, value) -> UserError:
  return UserError(f"{where}: field {field} (task '{task.name}'): {expected}; found {value!r}")
