"""Tests for mtl_jax.metrics against scikit-learn as an independent reference."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from mtl_jax.metrics import (
  METRIC_NAMES,
  classification_metrics,
  confusion_matrix,
  mean_and_std,
  multilabel_metrics,
  regression_metrics,
)

RTOL, ATOL = 1e-9, 1e-12


# ----------------------------------------------------------------------------- helpers
def sk_reference(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
  """The same metrics computed with scikit-learn (warnings silenced here only)."""
  k = probs.shape[1]
  pred = probs.argmax(axis=1)
  macro = dict(average="macro", zero_division=0)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UndefinedMetricWarning)
    warnings.simplefilter("ignore", UserWarning)
    ref = {
      "accuracy": skm.accuracy_score(y, pred),
      "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
      "precision_macro": skm.precision_score(y, pred, **macro),
      "recall_macro": skm.recall_score(y, pred, **macro),
      "f1_macro": skm.f1_score(y, pred, **macro),
      "f05_macro": skm.fbeta_score(y, pred, beta=0.5, **macro),
      "mcc": skm.matthews_corrcoef(y, pred),
    }
    present = np.unique(y)
    if k == 2:
      auc = skm.roc_auc_score(y, probs[:, 1]) if present.size == 2 else math.nan
    elif present.size == k:
      auc = skm.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=range(k))
    else:  # sklearn refuses absent classes: macro over classes with pos and neg
      per_class = [skm.roc_auc_score(y == c, probs[:, c]) for c in present if present.size > 1]
      auc = float(np.mean(per_class)) if per_class else math.nan
    ref["auroc_macro"] = auc
  return {name: float(v) for name, v in ref.items()}


def ours(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
  """Our metrics; any warning (e.g. numpy divide-by-zero) is an error."""
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    return classification_metrics(y, probs)


def assert_matches_sklearn(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
  got, ref = ours(y, probs), sk_reference(y, probs)
  assert set(got) == set(METRIC_NAMES)
  for name in METRIC_NAMES:
    np.testing.assert_allclose(got[name], ref[name], rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=name)
  return got


def make_probs(rng: np.random.Generator, y: np.ndarray, k: int, mode: str) -> np.ndarray:
  """Softmax-like rows, correlated with y; ``mode`` controls ties."""
  n = y.shape[0]
  probs = rng.dirichlet(np.ones(k), size=n)
  hit = rng.random(n) < 0.6  # make predictions informative
  probs[hit, y[hit]] += 1.0
  probs /= probs.sum(axis=1, keepdims=True)
  if mode == "ties":  # heavy ties: round to 1 decimal, renormalise
    probs = np.round(probs, 1)
    probs /= probs.sum(axis=1, keepdims=True)
  elif mode == "discrete":  # rows drawn from a tiny pool: massive exact ties
    pool = np.round(rng.dirichlet(np.ones(k), size=3), 1) + 0.05
    pool /= pool.sum(axis=1, keepdims=True)
    probs = pool[rng.integers(0, 3, size=n)]
  return probs


# ----------------------------------------------------------------------------- grid
@pytest.mark.parametrize("mode", ["dirichlet", "ties", "discrete"])
@pytest.mark.parametrize("n", [1, 5, 50, 500])
@pytest.mark.parametrize("k", [2, 3, 4, 7])
def test_random_problems_match_sklearn(k: int, n: int, mode: str) -> None:
  rng = np.random.default_rng([k, n, len(mode)])  # deterministic seed
  for trial in range(4):  # 0 plain, 1 unpredicted, 2 absent, 3 absent + unpredicted
    if trial >= 2 and k > 2:  # some classes absent from y_true
      classes = rng.choice(k, size=rng.integers(1, k), replace=False)
      y = rng.choice(classes, size=n)
    else:
      y = rng.integers(0, k, size=n)
    probs = make_probs(rng, y, k, mode)
    if trial % 2 == 1:  # some classes never predicted
      never = rng.choice(k, size=rng.integers(1, k), replace=False)
      probs[:, never] *= 1e-3
      probs /= probs.sum(axis=1, keepdims=True)
    assert_matches_sklearn(y, probs)


def test_large_problem_with_ties_matches_sklearn() -> None:
  rng = np.random.default_rng(7)
  y = rng.integers(0, 5, size=20_000)
  assert_matches_sklearn(y, make_probs(rng, y, 5, "ties"))
  assert_matches_sklearn(y, make_probs(rng, y, 5, "discrete"))


# ----------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("k", [2, 3, 7])
def test_perfect_predictions(k: int) -> None:
  rng = np.random.default_rng(k)
  y = rng.integers(0, k, size=60)
  probs = np.full((60, k), 0.1 / (k - 1))
  probs[np.arange(60), y] = 0.9
  got = assert_matches_sklearn(y, probs)
  for name in METRIC_NAMES:
    assert got[name] == pytest.approx(1.0, rel=RTOL), name


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("label", [0, 1])
def test_all_one_class(k: int, label: int) -> None:
  rng = np.random.default_rng(k + 10 * label)
  y = np.full(40, label)
  for probs in (rng.dirichlet(np.ones(k), size=40), np.eye(k)[y]):
    got = assert_matches_sklearn(y, probs)
    assert math.isnan(got["auroc_macro"])
    assert got["mcc"] == 0.0


def test_single_predicted_class_gives_mcc_zero() -> None:
  y = np.array([0, 1, 2, 0, 1, 2])
  probs = np.tile([0.2, 0.7, 0.1], (6, 1))
  got = assert_matches_sklearn(y, probs)
  assert got["mcc"] == 0.0
  assert got["auroc_macro"] == pytest.approx(0.5)  # constant scores: all ties


def test_empty_input_is_all_nan() -> None:
  got = ours(np.zeros(0, dtype=int), np.zeros((0, 3)))
  assert set(got) == set(METRIC_NAMES)
  assert all(math.isnan(v) for v in got.values())


def test_hand_computed_macro_over_union_and_ties() -> None:
  # K=4; y_true uses {0,1}, y_pred uses {0,1,2}; label 3 in neither -> macro over 3.
  y = np.array([0, 0, 0, 1])
  probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.6, 0.2, 0.1, 0.1], [0.3, 0.5, 0.1, 0.1]])
  got = assert_matches_sklearn(y, probs)
  assert got["accuracy"] == pytest.approx(0.75)  # micro
  assert got["precision_macro"] == pytest.approx((1 + 1 + 0) / 3)
  assert got["recall_macro"] == pytest.approx((2 / 3 + 1 + 0) / 3)
  assert got["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
  # Binary tie: positive scores {0.5, 0.8}, negative {0.5, 0.2} -> (0.5+1+1+1)/4.
  yb = np.array([0, 1, 0, 1])
  p1 = np.array([0.5, 0.5, 0.2, 0.8])
  got = assert_matches_sklearn(yb, np.stack([1 - p1, p1], axis=1))
  assert got["auroc_macro"] == pytest.approx(0.875)


def test_auroc_ignores_classes_absent_from_y_true() -> None:
  rng = np.random.default_rng(3)
  y = rng.choice([0, 2], size=30)
  probs = rng.dirichlet(np.ones(3), size=30)
  got = ours(y, probs)
  expect = np.mean([skm.roc_auc_score(y == c, probs[:, c]) for c in (0, 2)])
  assert got["auroc_macro"] == pytest.approx(expect, rel=RTOL)


# ----------------------------------------------------------------------------- confusion
@pytest.mark.parametrize("k,n", list(itertools.product([2, 3, 7], [0, 1, 50])))
def test_confusion_matrix_matches_sklearn(k: int, n: int) -> None:
  rng = np.random.default_rng(k * 100 + n)
  y_true, y_pred = rng.integers(0, k, size=n), rng.integers(0, k, size=n)
  got = confusion_matrix(y_true, y_pred, k)
  assert got.dtype == np.int64 and got.shape == (k, k)
  # sklearn rejects empty input; ours is all zeros then.
  ref = skm.confusion_matrix(y_true, y_pred, labels=range(k)) if n else np.zeros((k, k))
  np.testing.assert_array_equal(got, ref)


def test_confusion_matrix_orientation_and_range_check() -> None:
  np.testing.assert_array_equal(confusion_matrix([0, 0], [1, 1], 2), [[0, 2], [0, 0]])
  with pytest.raises(ValueError):
    confusion_matrix([0, 3], [0, 1], 3)


# ----------------------------------------------------------------------------- aggregation
def test_mean_and_std_matches_numpy() -> None:
  rng = np.random.default_rng(0)
  tasks = {f"t{i}": {"f1_macro": rng.random(), "mcc": rng.random()} for i in range(5)}
  out = mean_and_std(tasks)
  assert set(out) == {"mean/f1_macro", "std/f1_macro", "mean/mcc", "std/mcc"}
  for name in ("f1_macro", "mcc"):
    vals = [t[name] for t in tasks.values()]
    assert out[f"mean/{name}"] == pytest.approx(np.mean(vals), rel=RTOL)
    assert out[f"std/{name}"] == pytest.approx(np.std(vals), rel=RTOL)  # ddof=0


def test_mean_and_std_ignores_nan_and_missing() -> None:
  tasks = {
    "a": {"auroc_macro": math.nan, "f1_macro": 0.2, "only_a": 1.0},
    "b": {"auroc_macro": 0.8, "f1_macro": 0.4, "all_nan": math.nan},
    "c": {"auroc_macro": 0.6, "f1_macro": 0.9, "all_nan": math.nan},
  }
  out = mean_and_std(tasks)
  assert out["mean/auroc_macro"] == pytest.approx(0.7)
  assert out["std/auroc_macro"] == pytest.approx(np.std([0.8, 0.6]))
  assert out["mean/f1_macro"] == pytest.approx(np.mean([0.2, 0.4, 0.9]))
  assert out["std/f1_macro"] == pytest.approx(np.std([0.2, 0.4, 0.9]))
  assert out["mean/only_a"] == 1.0 and out["std/only_a"] == 0.0
  assert math.isnan(out["mean/all_nan"]) and math.isnan(out["std/all_nan"])
  assert mean_and_std({}) == {}


@pytest.mark.parametrize("seed", range(4))
def test_multilabel_metrics_match_sklearn(seed: int) -> None:
  rng = np.random.default_rng(seed)
  n, k, threshold = 50, 5, [0.5, 0.3, 0.7, 0.5][seed]
  y_true = rng.random((n, k)) < 0.3
  y_true[:, 4] = False  # a label no example has: macro F1 counts it as 0, AUROC skips it
  probs = np.round(np.clip(y_true * 0.3 + rng.random((n, k)) * 0.7, 0, 1), 1)  # ties
  got = multilabel_metrics(y_true, probs, threshold)
  y_pred = probs >= threshold
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UndefinedMetricWarning)
    assert got["f1_micro"] == pytest.approx(skm.f1_score(y_true, y_pred, average="micro", zero_division=0))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert got["precision_micro"] == pytest.approx(skm.precision_score(y_true, y_pred, average="micro",
                                                                       zero_division=0))
    assert got["recall_micro"] == pytest.approx(skm.recall_score(y_true, y_pred, average="micro", zero_division=0))
  assert got["subset_accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
  assert got["auroc_macro"] == pytest.approx(skm.roc_auc_score(y_true[:, :4], probs[:, :4], average="macro"))


def test_regression_metrics_match_scipy_and_sklearn() -> None:
  from scipy import stats
  rng = np.random.default_rng(0)
  y_true = np.round(rng.uniform(0, 5, 80), 0)  # many ties, as STS-B's scores
  y_pred = np.round(y_true + rng.normal(0, 1.5, 80), 1)
  got = regression_metrics(y_true, y_pred)
  assert got["pearson"] == pytest.approx(stats.pearsonr(y_true, y_pred)[0])
  assert got["spearman"] == pytest.approx(stats.spearmanr(y_true, y_pred)[0])
  assert got["mse"] == pytest.approx(skm.mean_squared_error(y_true, y_pred))
  assert got["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
  assert math.isnan(regression_metrics(y_true, np.ones(80))["pearson"])  # a constant prediction: undefined
  assert math.isnan(regression_metrics(np.arange(3.0), np.full(3, 0.1))["pearson"])  # also when its mean is inexact
  assert all(math.isnan(v) for v in regression_metrics(np.zeros(0), np.zeros(0)).values())
