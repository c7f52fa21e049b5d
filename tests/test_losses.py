"""Grouped cross-entropy against a numpy reference written from the definition."""

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.losses import grouped_loss as grouped
from mtl_jax.losses import task_means, total_loss
from mtl_jax.tasks import Layout, Task


def grouped_loss(logits, labels, weights, layout):
  return grouped({"classification": logits}, {"labels": labels, "weights": weights}, layout)


def reference(logits, labels, weights, layout):
  """Loops over examples and tasks: smoothed-target cross-entropy, weighted, missing labels skipped."""
  sums, counts = np.zeros(len(layout.tasks)), np.zeros(len(layout.tasks))
  for t, (task, off) in enumerate(zip(layout.tasks, layout.offsets)):
    k, eps = task.num_classes, task.label_smoothing
    for i in range(len(labels)):
      if labels[i, t] < 0:
        continue
      z = logits[i, off:off + k].astype(np.float64)
      log_p = z - z.max() - np.log(np.exp(z - z.max()).sum())
      target = np.full(k, eps / k)
      target[labels[i, t]] += 1 - eps
      sums[t] += weights[i, t] * -(target * log_p).sum()
      counts[t] += weights[i, t]
  return sums, counts


def random_batch(layout, n=64, seed=0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 3, (n, layout.total("classification"))).astype(np.float32)
  labels = np.stack([rng.integers(-1, k, n) for k in layout.group_sizes], 1).astype(np.int32)
  weights = rng.uniform(0, 2, (n, len(layout.tasks))).astype(np.float32)
  return logits, labels, weights


def test_matches_numpy_reference(layout):
  logits, labels, weights = random_batch(layout)
  sums, counts = grouped_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights), layout)
  ref_sums, ref_counts = reference(logits, labels, weights, layout)
  np.testing.assert_allclose(sums, ref_sums, rtol=1e-5)
  np.testing.assert_allclose(counts, ref_counts, rtol=1e-6)
  expected_total = sum(t.weight * s / c for t, s, c in zip(layout.tasks, ref_sums, ref_counts))
  np.testing.assert_allclose(total_loss(sums, counts, layout), expected_total, rtol=1e-5)


def test_missing_labels_contribute_nothing(layout):
  logits, labels, weights = random_batch(layout, seed=1)
  labels[:, 1] = -1
  sums, counts = grouped_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights), layout)
  assert float(sums[1]) == 0.0 and float(counts[1]) == 0.0
  assert float(task_means(sums, counts)[1]) == 0.0
  assert np.isfinite(float(total_loss(sums, counts, layout)))


def test_sum_count_is_independent_of_the_split(layout):
  """Summing (sum, count) of two halves gives the loss of the whole batch, so the mesh shape cannot change it."""
  logits, labels, weights = (jnp.asarray(a) for a in random_batch(layout, seed=2))
  whole = grouped_loss(logits, labels, weights, layout)
  halves = [grouped_loss(logits[s], labels[s], weights[s], layout) for s in (slice(0, 20), slice(20, None))]
  np.testing.assert_allclose(halves[0][0] + halves[1][0], whole[0], rtol=1e-5)
  np.testing.assert_allclose(total_loss(halves[0][0] + halves[1][0], halves[0][1] + halves[1][1], layout),
                             total_loss(*whole, layout), rtol=1e-5)


def test_gradient_ignores_unlabelled_rows(layout):
  logits, labels, weights = (jnp.asarray(a) for a in random_batch(layout, seed=3))
  labels = labels.at[0].set(-1)
  grad = jax.grad(lambda z: total_loss(*grouped_loss(z, labels, weights, layout), layout))(logits)
  assert float(jnp.abs(grad[0]).max()) == 0.0
  assert float(jnp.abs(grad[1:]).max()) > 0.0


def test_multilabel_and_regression_losses_match_numpy():
  """Sigmoid BCE averaged over a task's labels (with label smoothing), squared error and Huber, per labelled row."""
  layout = Layout((Task("m", "multilabel", ("a", "b", "c"), label_smoothing=0.2), Task("c", "classification", ("x", "y")),
                   Task("r", "regression", ()), Task("h", "regression", (), loss="huber")))
  rng = np.random.default_rng(4)
  n = 32
  logits = {"multilabel": rng.normal(0, 2, (n, 3)).astype(np.float32),
            "classification": rng.normal(0, 2, (n, 2)).astype(np.float32),
            "regression": rng.normal(0, 2, (n, 2)).astype(np.float32)}
  targets = np.concatenate([rng.random((n, 3)) < 0.4, rng.normal(0, 2, (n, 2))], 1).astype(np.float32)
  labels = np.where(rng.random((n, 4)) < 0.2, -1, 0).astype(np.int32)
  labels[:, 1] = rng.integers(-1, 2, n)
  weights = rng.uniform(0, 2, (n, 4)).astype(np.float32)
  batch = {"labels": labels, "weights": weights, "targets": targets}
  sums, counts = grouped(jax.tree.map(jnp.asarray, logits), jax.tree.map(jnp.asarray, batch), layout)
  w = np.where(labels >= 0, weights, 0.0)
  z, y = logits["multilabel"].astype(np.float64), targets[:, :3] * 0.8 + 0.1
  bce = -(y * np.log(1 / (1 + np.exp(-z))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-z)))).mean(1)
  err = logits["regression"] - targets[:, 3:]
  huber = np.where(np.abs(err[:, 1]) <= 1, 0.5 * err[:, 1] ** 2, np.abs(err[:, 1]) - 0.5)
  np.testing.assert_allclose(np.asarray(sums)[[0, 2, 3]], [(w[:, 0] * bce).sum(), (w[:, 2] * err[:, 0] ** 2).sum(),
                                                           (w[:, 3] * huber).sum()], rtol=1e-5)
  np.testing.assert_allclose(counts, w.sum(0), rtol=1e-6)
