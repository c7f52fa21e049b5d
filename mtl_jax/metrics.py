"""Host-side classification metrics (pure numpy) for one task, plus aggregation.

Conventions (chosen to match scikit-learn exactly; see tests/test_metrics.py):

* Inputs: ``y_true`` int ``[n]`` in ``[0, K)``, ``probs`` float ``[n, K]`` (softmax rows).
  Predictions are ``argmax(probs, axis=1)`` (first maximum on ties, like numpy).
* ``accuracy`` is micro accuracy (fraction of correct predictions).
* ``precision_macro``, ``recall_macro``, ``f1_macro``, ``f05_macro`` (F-beta, beta=0.5)
  are macro averages over the labels present in ``y_true`` ∪ ``y_pred`` (sklearn's
  default ``labels``), with ``zero_division=0``: a per-class ratio with a zero
  denominator counts as 0. F-beta = (1+b²)·tp / (b²·n_true + n_pred).
* ``balanced_accuracy`` is the mean recall over classes present in ``y_true``
  (classes only predicted are ignored, as in sklearn).
* ``mcc`` is the multi-class Matthews correlation (Gorodkin's R_K); 0.0 when the
  denominator vanishes (e.g. a single class in ``y_true`` or in ``y_pred``).
* ``auroc_macro``: for K == 2, the binary ROC AUC of ``probs[:, 1]``; for K > 2, the
  mean one-vs-rest ROC AUC of ``probs[:, k]`` over the classes k that have both
  positives and negatives in ``y_true`` (sklearn raises when a class is absent; when
  all classes are present this equals sklearn's ``multi_class="ovr", average="macro"``).
  Computed as a Mann-Whitney U statistic with average ranks, so ties in scores count
  1/2 exactly like sklearn's trapezoidal ROC curve. NaN when no class qualifies.
* Empty input (n == 0): every metric is NaN.
* ``mean_and_std`` aggregates over tasks, ignoring non-finite values per metric;
  ``std`` is the population standard deviation (ddof=0); NaN if no task has a value.
"""

from __future__ import annotations

import math

import numpy as np

METRIC_NAMES: tuple[str, ...] = (
  "accuracy",
  "balanced_accuracy",
  "precision_macro",
  "recall_macro",
  "f1_macro",
  "f05_macro",
  "mcc",
  "auroc_macro",
)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
  """Return the int64 ``[K, K]`` confusion matrix; rows are true, columns predicted."""
  y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
  y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
  if y_true.shape != y_pred.shape:
    raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")
  for name, y in (("y_true", y_true), ("y_pred", y_pred)):
    if y.size and (y.min() < 0 or y.max() >= num_classes):
      raise ValueError(f"{name} has labels outside [0, {num_classes})")
  flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
  return flat.reshape(num_classes, num_classes).astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  """Elementwise num / den with 0 where den == 0 (sklearn's zero_division=0)."""
  num = np.asarray(num, dtype=np.float64)
  den = np.asarray(den, dtype=np.float64)
  out = np.zeros_like(num)
  np.divide(num, den, out=out, where=den != 0)
  return out


def matthews_corrcoef(cm: np.ndarray) -> float:
  """Multi-class Matthews correlation from a confusion matrix; 0.0 if degenerate."""
  t_sum = cm.sum(axis=1, dtype=np.float64)
  p_sum = cm.sum(axis=0, dtype=np.float64)
  n_correct = np.trace(cm, dtype=np.float64)
  n = p_sum.sum()
  cov_tp = n_correct * n - np.dot(t_sum, p_sum)
  cov_pp = n * n - np.dot(p_sum, p_sum)
  cov_tt = n * n - np.dot(t_sum, t_sum)
  denom = cov_pp * cov_tt
  return 0.0 if denom == 0 else float(cov_tp / np.sqrt(denom))


def binary_auroc(is_pos: np.ndarray, scores: np.ndarray) -> float:
  """ROC AUC of ``scores`` for boolean labels via Mann-Whitney U (ties count 1/2).

  Returns NaN when there are no positives or no negatives.
  """
  is_pos = np.asarray(is_pos, dtype=bool).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  n_pos = int(is_pos.sum())
  n_neg = is_pos.size - n_pos
  if n_pos == 0 or n_neg == 0:
    return math.nan
  u = average_ranks(scores)[is_pos].sum() - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))


def macro_ovr_auroc(y_true: np.ndarray, probs: np.ndarray) -> float:
  """Binary AUROC of ``probs[:, 1]`` if K == 2, else macro one-vs-rest AUROC over
  classes with both positives and negatives in ``y_true`` (NaN if none)."""
  num_classes = probs.shape[1]
  if num_classes == 2:
    return binary_auroc(y_true == 1, probs[:, 1])
  aucs = [binary_auroc(y_true == k, probs[:, k]) for k in range(num_classes)]
  finite = [a for a in aucs if not math.isnan(a)]
  return float(np.mean(finite)) if finite else math.nan


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
  """All metrics in ``METRIC_NAMES`` for one task (see module docstring)."""
  y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
  probs = np.asarray(probs, dtype=np.float64)
  if probs.ndim != 2 or probs.shape[0] != y_true.shape[0]:
    raise ValueError(f"expected probs [n, K] with n={y_true.shape[0]}, got {probs.shape}")
  if y_true.size == 0:
    return {name: math.nan for name in METRIC_NAMES}
  num_classes = probs.shape[1]
  y_pred = np.argmax(probs, axis=1)
  cm = confusion_matrix(y_true, y_pred, num_classes)

  tp = np.diag(cm).astype(np.float64)
  n_true = cm.sum(axis=1).astype(np.float64)
  n_pred = cm.sum(axis=0).astype(np.float64)
  in_true = n_true > 0
  in_union = in_true | (n_pred > 0)

  precision = _safe_div(tp, n_pred)
  recall = _safe_div(tp, n_true)

  def f_beta(beta: float) -> float:
    b2 = beta * beta
    return float(np.mean(_safe_div((1 + b2) * tp, b2 * n_true + n_pred)[in_union]))

  return {
    "accuracy": float(tp.sum() / y_true.size),
    "balanced_accuracy": float(np.mean(recall[in_true])),
    "precision_macro": float(np.mean(precision[in_union])),
    "recall_macro": float(np.mean(recall[in_union])),
    "f1_macro": f_beta(1.0),
    "f05_macro": f_beta(0.5),
    "mcc": matthews_corrcoef(cm),
    "auroc_macro": macro_ovr_auroc(y_true, probs),
  }


MULTILABEL_NAMES: tuple[str, ...] = ("f1_micro", "f1_macro", "precision_micro", "recall_micro", "subset_accuracy",
                                     "auroc_macro")


def multilabel_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per label (true positives, predicted, true) of boolean [n, K] arrays."""
  return (y_true & y_pred).sum(0).astype(np.float64), y_pred.sum(0).astype(np.float64), y_true.sum(0).astype(
      np.float64)


def multilabel_metrics(y_true: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float]:
  """Multi-label scores of one task, a label predicted where its probability is >= ``threshold``: micro P/R/F1
  (counts summed over labels), macro F1 over every label (0 for 0/0, as scikit-learn's ``zero_division=0``), subset
  accuracy (every label right), and macro AUROC over the labels with positives and negatives (NaN if none)."""
  y_true, probs = np.asarray(y_true, bool), np.asarray(probs, np.float64)
  if y_true.shape[0] == 0:
    return {name: math.nan for name in MULTILABEL_NAMES}
  y_pred = probs >= threshold
  tp, predicted, true = multilabel_counts(y_true, y_pred)
  per = per_label_scores(y_true, probs, threshold)
  aucs = per["auroc"][~np.isnan(per["auroc"])]
  micro = lambda num, den: float(_safe_div(num.sum(), den.sum()))
  return {"f1_micro": micro(2 * tp, true + predicted), "f1_macro": float(np.mean(per["f1"])),
          "precision_micro": micro(tp, predicted), "recall_micro": micro(tp, true),
          "subset_accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))),
          "auroc_macro": float(np.mean(aucs)) if aucs.size else math.nan}


def per_label_scores(y_true: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
  """Per label of a multi-label task: precision, recall, F1 (0 for 0/0), support, and AUROC (NaN for a label
  without positives or without negatives)."""
  y_true = np.asarray(y_true, bool)
  tp, predicted, true = multilabel_counts(y_true, np.asarray(probs) >= threshold)
  return {"precision": _safe_div(tp, predicted), "recall": _safe_div(tp, true),
          "f1": _safe_div(2 * tp, true + predicted), "support": true.astype(np.int64),
          "auroc": np.array([binary_auroc(y_true[:, k], probs[:, k]) for k in range(y_true.shape[1])])}


REGRESSION_NAMES: tuple[str, ...] = ("pearson", "spearman", "mse", "mae")


def average_ranks(x: np.ndarray) -> np.ndarray:
  """1-based ranks, ties sharing their average rank (scipy.stats.rankdata's default)."""
  s = np.sort(x)
  return (np.searchsorted(s, x, side="left") + np.searchsorted(s, x, side="right") + 1) / 2.0


def pearson(x: np.ndarray, y: np.ndarray) -> float:
  """Pearson's r; NaN when either side is constant (as scipy, which also warns)."""
  if np.ptp(x) == 0 or np.ptp(y) == 0:  # the mean of [0.1, 0.1, 0.1] is not exactly 0.1: test, do not divide
    return math.nan
  x, y = x - x.mean(), y - y.mean()
  denom = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
  return float(np.dot(x, y) / denom) if denom > 0 else math.nan


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
  """Pearson and Spearman correlation, mean squared and mean absolute error of one score per example."""
  y_true, y_pred = np.asarray(y_true, np.float64).reshape(-1), np.asarray(y_pred, np.float64).reshape(-1)
  if y_true.size == 0:
    return {name: math.nan for name in REGRESSION_NAMES}
  return {"pearson": pearson(y_true, y_pred), "spearman": pearson(average_ranks(y_true), average_ranks(y_pred)),
          "mse": float(np.mean((y_true - y_pred) ** 2)), "mae": float(np.mean(np.abs(y_true - y_pred)))}


def mean_and_std(per_task: dict[str, dict[str, float]]) -> dict[str, float]:
  """``mean/<metric>`` and ``std/<metric>`` (ddof=0) over tasks with a finite value.

  Metric names are the union over tasks (first-seen order); NaN if no task has a
  finite value for a metric.
  """
  names: list[str] = []
  for metrics in per_task.values():
    names.extend(m for m in metrics if m not in names)
  out: dict[str, float] = {}
  for name in names:
    values = np.array([float(m[name]) for m in per_task.values() if name in m], dtype=np.float64)
    values = values[np.isfinite(values)]
    out[f"mean/{name}"] = float(values.mean()) if values.size else math.nan
    out[f"std/{name}"] = float(values.std()) if values.size else math.nan
  return out
