"""The grouped loss as (sum, count) per task; each kind (mtl_jax/kinds) gives its tasks' per-item loss.

Normalisation. A scored item i of task t (a text for the text kinds, a word's first sub-token for tagging)
contributes w_it * loss_it, where w_it is the example's weight for t (0 where the label is missing, -1, or the row is
padding) and loss_it the kind's: cross-entropy against smooth(y) = (1 - e_t) * onehot(y) + e_t / K_t with label
smoothing e_t (classification, tagging), binary cross-entropy averaged over the task's labels (multilabel), squared
error or Huber loss (regression). The task loss is
    L_t = sum_i w_it * loss_it / sum_i w_it
over the *global* batch: both sums are reduced over every device before dividing (under `jit` with a sharded batch,
`jnp.sum` is that global reduction), so L_t does not depend on how the batch is split. A tagging task's loss is thus a
mean over scored words. A task with no labelled item in the batch contributes 0. The training objective is
sum_t lambda_t * L_t with the per-task weights lambda_t.
"""

import jax
import jax.numpy as jnp

from mtl_jax import kinds
from mtl_jax.heads import split_groups
from mtl_jax.kinds.base import scored_weights
from mtl_jax.tasks import Layout


def grouped_loss(logits: dict[str, jax.Array], batch: dict, layout: Layout) -> tuple[jax.Array, jax.Array]:
  """Head outputs by kind and a batch (labels [B, T], weights [B, T], tags [B, L, T], targets [B, V]) -> (sums [T],
  counts [T])."""
  parts = {}
  for kind in kinds.of_layout(layout):
    for t, task_logits in split_groups(logits[kind.name], layout, kind.name).items():
      parts[t] = kind.loss(task_logits, batch, t, layout)
  sums, counts = zip(*(parts[t] for t in range(len(layout.tasks))))
  return jnp.stack(sums), jnp.stack(counts)


def label_counts(batch: dict, layout: Layout) -> jax.Array:
  """Per-task weight sums of the scored items (the denominators of the task losses), from the batch alone: known
  before any forward pass, so micro-batches of an accumulated step can all divide by the whole batch's counts."""
  counts = []
  for t, task in enumerate(layout.tasks):
    counts.append(jnp.sum(scored_weights(*kinds.KINDS[task.kind].targets(batch, t))))
  return jnp.stack(counts)


def task_means(sums: jax.Array, counts: jax.Array) -> jax.Array:
  """Per-task mean losses; 0 for a task without labelled examples."""
  return jnp.where(counts > 0, sums / jnp.where(counts > 0, counts, 1.0), 0.0)


def total_loss(sums: jax.Array, counts: jax.Array, layout: Layout) -> jax.Array:
  """sum_t lambda_t * L_t, the training objective."""
  return jnp.sum(jnp.asarray(layout.weights, jnp.float32) * task_means(sums, counts))
