"""Tagging of every word: a softmax over tags per task at each word's first sub-token.

Evaluation gathers the predicted tag of every word per example (the argmax, on device). A sentence longer than the
encoder's window was split into consecutive examples; their words are joined again by sentence id, so spans crossing
a window boundary are scored as one span and every gold word counts once. Tasks with a span `scheme` are scored on
spans (conlleval semantics) besides word accuracy.
"""

import jax.numpy as jnp
import numpy as np

from mtl_jax import metrics as metrics_lib
from mtl_jax import report, spans
from mtl_jax.kinds.base import Kind, packed


class Tagging(Kind):
  name, salt, reads_words, activation = "tagging", 2, True, "softmax"
  schemes = spans.SCHEMES
  options = ("label_smoothing", "scheme")
  metric_names = ("accuracy", "precision", "recall", "f1")
  shown = {"accuracy": "acc", "precision": "span_p", "recall": "span_r", "f1": "span_f1"}

  def main_metric(self, task) -> str:
    return "f1" if task.scheme else "accuracy"

  def features(self, hidden, batch, pooling):
    return hidden

  def targets(self, batch, t):
    if not packed(batch):
      return batch["tags"][:, :, t], batch["weights"][:, t, None]
    text = jnp.maximum(batch["attention_mask"] - 1, 0)  # each token's slot in its row (padding: no tag, unscored)
    return batch["tags"][:, :, t], jnp.take_along_axis(batch["weights"][..., t], text, axis=1)

  def outputs(self, groups):
    return jnp.stack([jnp.argmax(g, axis=-1) for g in groups], axis=-1).astype(jnp.int32)

  def empty(self, count, width):
    return [None] * count

  def gather(self, store, out, data, idx, where):
    for i, row, first in zip(idx, where[1], where[2]):
      store[i] = out[row, first + data.starts[i]]  # [n_words, n_tagging_tasks]: the prediction of each word

  def task_output(self, store, layout, t):
    column = layout.of_kind(self.name).index(t)
    return [p[:, column] for p in store]

  def metrics(self, data, output, t, layout):
    task = layout.tasks[t]
    gold, pred = sentence_tags(data, output, t)
    if not gold:
      return {name: float("nan") for name in self.metric_names}
    result = {"accuracy": float(np.mean(np.concatenate(gold) == np.concatenate(pred)))}
    if task.scheme:
      scores = spans.span_scores(tag_names(gold, task), tag_names(pred, task), task.scheme)
      result.update({k: v for k, v in scores.items() if k != "accuracy"})
    return result

  def prediction(self, task, output, rows, words):
    tags = [task.labels[k] for i in rows for k in output[i]]  # no rows: a text without words, no tags
    result = {"words": list(words), "tags": tags}
    if task.scheme:
      result["spans"] = [{"text": " ".join(words[a:b]), "label": label, "start": a, "end": b}
                         for label, a, b in spans.extract_spans(tags, task.scheme)]
    return result

  def details(self, data, output, t, layout):
    task = layout.tasks[t]
    gold, pred = sentence_tags(data, output, t)
    count = f"{len(gold)} sentences, {sum(len(g) for g in gold)} words"
    if task.scheme:
      return {"scores": spans.span_report(tag_names(gold, task), tag_names(pred, task), task.scheme), "count": count}
    flat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)
    cm = metrics_lib.confusion_matrix(flat(gold), flat(pred), task.num_classes)
    return {"scores": report.per_class(cm, task.labels), "count": count}

  def report_section(self, task, detail, split):
    if task.scheme:
      return [f"## {task.name}: per span type ({task.scheme}, exact match of type, start and end)", "",
              *report.scores_table("type", detail["scores"]), ""]
    return [f"## {task.name}: per tag (over words)", "", *report.scores_table("tag", detail["scores"]), ""]


def sentence_tags(data, preds: list[np.ndarray], t: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """(gold, predicted) word tag ids per sentence labelled for task position `t`."""
  gold, pred = {}, {}
  for i, starts in enumerate(data.starts):
    if len(starts) and data.tags[i][starts[0], t] >= 0:
      gold.setdefault(data.sentence[i], []).append(data.tags[i][starts, t])
      pred.setdefault(data.sentence[i], []).append(preds[i])
  return [np.concatenate(gold[s]) for s in gold], [np.concatenate(pred[s]) for s in gold]


def tag_names(sentences: list[np.ndarray], task) -> list[list[str]]:
  names = np.asarray(task.labels, dtype=object)
  return [list(names[s]) for s in sentences]


KIND = Tagging()
