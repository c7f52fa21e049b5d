"""Tagging evaluation on the host: word-level predictions back into sentences, then token accuracy and span scores.

A sentence longer than the encoder's window was split into consecutive examples; their words are joined again by
sentence id, so spans crossing a window boundary are scored as one span and every gold word counts once.
"""

import numpy as np

from mtl_jax import spans
from mtl_jax.input_pipeline import Encoded
from mtl_jax.tasks import Task

TAGGING_METRICS = ("accuracy", "precision", "recall", "f1")


def sentence_tags(data: Encoded, preds: list[np.ndarray], t: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """(gold, predicted) word tag ids per sentence labelled for task position `t`."""
  gold, pred = {}, {}
  for i, starts in enumerate(data.starts):
    if len(starts) and data.tags[i][starts[0], t] >= 0:
      gold.setdefault(data.sentence[i], []).append(data.tags[i][starts, t])
      pred.setdefault(data.sentence[i], []).append(preds[i])
  return [np.concatenate(gold[s]) for s in gold], [np.concatenate(pred[s]) for s in gold]


def tagging_metrics(data: Encoded, preds: list[np.ndarray], t: int, task: Task) -> dict[str, float]:
  """Token accuracy, and for span tasks micro precision/recall/F1 and F1 per span type (conlleval semantics)."""
  gold, pred = sentence_tags(data, preds, t)
  if not gold:
    return {name: float("nan") for name in TAGGING_METRICS}
  result = {"accuracy": float(np.mean(np.concatenate(gold) == np.concatenate(pred)))}
  if task.scheme:
    names = np.asarray(task.labels, dtype=object)
    scores = spans.span_scores([list(names[g]) for g in gold], [list(names[p]) for p in pred], task.scheme)
    result.update({k: v for k, v in scores.items() if k != "accuracy"})
  return result
