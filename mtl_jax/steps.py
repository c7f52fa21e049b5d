"""The jitted steps' bodies: the training update, and the forward passes of evaluation and prediction.

`train.py` jits them with the run's shardings; the benchmarks time them; `evaluation` and `predict` run the
forward passes on one device.
"""

import jax
import jax.numpy as jnp
import optax

from mtl_jax import weighting
from mtl_jax.losses import grouped_loss, label_counts, task_means
from mtl_jax.model import Model


def train_step(state: dict, batch: dict, *, model: Model, tx: optax.GradientTransformation, dropout_key: jax.Array,
               accumulation: int = 1, loss_weighting: str = "static"):
  """One AdamW step on the grouped loss; returns the new state and the global per-task (sums, counts).

  With `accumulation` k the batch is processed as k micro-batches (row i goes to micro-batch i mod k, so each
  device keeps its share of every one) whose gradients are summed before the update. Every micro-batch divides by the
  whole batch's label counts, so the summed loss and gradient are those of the full batch (up to float rounding).
  `loss_weighting` (see mtl_jax/weighting.py) turns the task losses into the update; "pcgrad" takes one backward
  pass per task and reports the fraction of task pairs whose encoder gradients conflict.
  """
  rng = jax.random.fold_in(dropout_key, state["step"])
  counts = label_counts(batch, model.layout)
  weights = jnp.asarray(model.layout.weights, jnp.float32)

  def task_losses(params, micro, micro_rng):  # this micro-batch's share of each task's mean loss, and loss sums
    sums, _ = grouped_loss(model.logits(params, micro, micro_rng), micro, model.layout)
    return task_means(sums, counts), sums

  def loss_and_grads(params, micro, micro_rng):  # ((objective, sums), grads); PCGrad: grads per task
    if loss_weighting == "pcgrad":
      losses, vjp, sums = jax.vjp(lambda p: task_losses(p, micro, micro_rng), params, has_aux=True)
      task_grads = jax.lax.map(lambda cotangent: vjp(cotangent)[0], jnp.diag(weights))
      return (jnp.sum(weights * losses), sums), task_grads

    def objective(p):
      losses, sums = task_losses(p, micro, micro_rng)
      return weighting.objective(losses, counts > 0, weights, p.get("weighting", {}), 1 / accumulation), sums
    return jax.value_and_grad(objective, has_aux=True)(params)

  if accumulation == 1:
    (loss, sums), grads = loss_and_grads(state["params"], batch, rng)
  else:
    micro = jax.tree.map(lambda x: jnp.swapaxes(x.reshape(x.shape[0] // accumulation, accumulation, *x.shape[1:]),
                                                0, 1), batch)

    def add(carry, xs):
      return jax.tree.map(jnp.add, carry, loss_and_grads(state["params"], xs[0], jax.random.fold_in(rng, xs[1]))), None

    shapes = jax.eval_shape(loss_and_grads, state["params"], jax.tree.map(lambda x: x[0], micro), rng)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    ((loss, sums), grads), _ = jax.lax.scan(add, zeros, (micro, jnp.arange(accumulation)))
  out = {"loss": loss, "sums": sums, "counts": counts}
  if loss_weighting == "pcgrad":  # surgery on the shared encoder's gradients; the heads' are summed
    encoder, gram = weighting.pcgrad(grads["encoder"], jax.random.fold_in(rng, weighting.ORDER_SALT))
    grads = {**jax.tree.map(lambda g: g.sum(0), grads), "encoder": encoder}
    out["gradient_conflicts"] = weighting.conflict_fraction(gram)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state,
               "step": state["step"] + 1}
  return new_state, out


def eval_step(params: dict, batch: dict, *, model: Model):
  """What evaluation gathers per kind (`Model.outputs`) and the global per-task loss (sums, counts)."""
  logits = model.logits(params, batch)
  return (model.outputs(logits), *grouped_loss(logits, batch, model.layout))


def predict_step(params: dict, batch: dict, *, model: Model):
  """What prediction gathers per kind (`Model.outputs`), without the loss."""
  return model.outputs(model.logits(params, batch))
