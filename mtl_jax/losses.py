"""Grouped cross-entropy as (sum, count) per task.

Normalisation. For task t with label smoothing e_t and K_t classes, a scored item i (a text for classification, a
word's first sub-token for tagging) contributes
    w_it * CE(smooth(y_it), logits_it),  smooth(y) = (1 - e_t) * onehot(y) + e_t / K_t,
where w_it is the example's weight for t (0 where the label is missing, -1, or the row is padding). The task loss is
    L_t = sum_i w_it * CE_it / sum_i w_it
over the *global* batch: both sums are reduced over every device before dividing (under `jit` with a sharded batch,
`jnp.sum` is that global reduction), so L_t does not depend on how the batch is split. A tagging task's loss is thus a
mean over scored words. A task with no labelled item in the batch contributes 0. The training objective is
sum_t lambda_t * L_t with the per-task weights lambda_t.
"""

import jax
import jax.numpy as jnp
import optax

from mtl_jax import kinds
from mtl_jax.heads import split_groups
from mtl_jax.tasks import Layout, Task


def task_cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array,
                       task: Task) -> tuple[jax.Array, jax.Array]:
  """logits [..., K], labels [...] (-1 = not scored), weights broadcastable to labels -> (loss sum, weight sum)."""
  w = jnp.where(labels >= 0, weights, 0.0)
  target = optax.smooth_labels(jax.nn.one_hot(jnp.maximum(labels, 0), task.num_classes), task.label_smoothing)
  return jnp.sum(w * optax.softmax_cross_entropy(logits, target)), jnp.sum(w)


def grouped_cross_entropy(logits: dict[str, jax.Array], batch: dict, layout: Layout) -> tuple[jax.Array, jax.Array]:
  """Head outputs by kind and a batch (labels [B, T], weights [B, T], tags [B, L, T]) -> (sums [T], counts [T])."""
  parts = {}
  for kind in kinds.of_layout(layout):
    for t, task_logits in split_groups(logits[kind.name], layout, kind.name).items():
      parts[t] = task_cross_entropy(task_logits, *kind.targets(batch, t), layout.tasks[t])
  sums, counts = zip(*(parts[t] for t in range(len(layout.tasks))))
  return jnp.stack(sums), jnp.stack(counts)


def label_counts(batch: dict, layout: Layout) -> jax.Array:
  """Per-task weight sums of the scored items (the denominators of the task losses), from the batch alone: known
  before any forward pass, so micro-batches of an accumulated step can all divide by the whole batch's counts."""
  counts = []
  for t, task in enumerate(layout.tasks):
    labels, weights = kinds.KINDS[task.kind].targets(batch, t)
    counts.append(jnp.sum(jnp.where(labels >= 0, weights, 0.0)))
  return jnp.stack(counts)


def task_means(sums: jax.Array, counts: jax.Array) -> jax.Array:
  """Per-task mean losses; 0 for a task without labelled examples."""
  return jnp.where(counts > 0, sums / jnp.where(counts > 0, counts, 1.0), 0.0)


def total_loss(sums: jax.Array, counts: jax.Array, layout: Layout) -> jax.Array:
  """sum_t lambda_t * L_t, the training objective."""
  return jnp.sum(jnp.asarray(layout.weights, jnp.float32) * task_means(sums, counts))
