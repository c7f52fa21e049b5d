"""How the task losses make one update: static weights, uncertainty weighting, or PCGrad.

`config.train.loss_weighting`:
  static       sum_t lambda_t * L_t with the configured task weights lambda_t.
  uncertainty  Kendall, Gal & Cipolla (2018), "Multi-task learning using uncertainty to weigh losses": one learned
               log-variance s_t per task, objective sum_t lambda_t * (exp(-s_t) * L_t + s_t / 2) (their
               classification form 1/sigma^2 L + log sigma with s = log sigma^2, scaled by the static weight). For a
               fixed L_t the minimum is at s_t = log(2 L_t), i.e. an effective weight lambda_t exp(-s_t) =
               lambda_t / (2 L_t): tasks with larger losses are weighted down. A task
               without labels in the batch contributes neither term (its s_t gets no gradient). The s_t live in
               params["weighting"] and get their own Adam learning rate (`train.weighting_learning_rate`); they are
               not part of the model a checkpoint's `best/` holds.
  pcgrad       Yu et al. (2020), "Gradient surgery for multi-task learning": each task's gradient g_i of the shared
               encoder is projected, against the tasks j != i in random order, onto the normal plane of every g_j it
               conflicts with (g_i . g_j < 0): g_i <- g_i - (g_i . g_j) / |g_j|^2 g_j; the update is the sum of the
               projected gradients. Task heads get their plain sum (no other task's gradient touches them). Needs one
               backward pass per task.

PCGrad here works on the Gram matrix of the task gradients: every projected g_i stays a combination sum_k a_ik g_k,
and g_i . g_j = a_i . Gram[:, j], so the projections are a loop over T x T numbers and the update is one weighted sum
sum_k (sum_i a_ik) g_k over the parameters, whatever their sharding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

METHODS = ("static", "uncertainty", "pcgrad")
ORDER_SALT = 2**31 - 1  # PCGrad's orders are drawn from fold_in(step key, this), apart from the micro-batches' keys


def init(method: str, num_tasks: int) -> dict:
  """The learned parameters of a method (params["weighting"]); empty for static and PCGrad."""
  return {"log_var": jnp.zeros((num_tasks,), jnp.float32)} if method == "uncertainty" else {}


def objective(task_losses: jax.Array, present: jax.Array, weights: jax.Array, learned: dict,
              regulariser_scale: float = 1.0) -> jax.Array:
  """The scalar training objective from per-task mean losses [T]: static sum_t w_t L_t, or with learned
  log-variances sum_t w_t (exp(-s_t) L_t + s_t / 2) over the tasks `present` in the batch. `regulariser_scale` spreads
  the s_t / 2 term over the micro-batches of an accumulated step (each adds its share of the L_t)."""
  if "log_var" not in learned:
    return jnp.sum(weights * task_losses)
  s = learned["log_var"]
  return jnp.sum(jnp.where(present, weights * (jnp.exp(-s) * task_losses + regulariser_scale * s / 2), 0.0))


def effective_weights(weights: jax.Array, learned: dict) -> jax.Array:
  """The factor each task's loss has in the gradient: w_t, or w_t exp(-s_t) with learned log-variances."""
  return weights * jnp.exp(-learned["log_var"]) if "log_var" in learned else weights


def gram(task_grads) -> jax.Array:
  """[T, T] dot products of the task gradients (a pytree whose leaves have a leading task axis)."""
  leaves = jax.tree.leaves(task_grads)
  return sum(jnp.einsum("t...,s...->ts", g.astype(jnp.float32), g.astype(jnp.float32)) for g in leaves)


def pcgrad_coefficients(gram_matrix: jax.Array, orders: jax.Array) -> jax.Array:
  """c [T] such that sum_k c_k g_k is PCGrad's update. `orders` [T, T]: row i is a permutation of the tasks, the
  order task i is projected against the others in (entry i itself is skipped)."""
  num_tasks = gram_matrix.shape[0]
  eye = jnp.eye(num_tasks, dtype=gram_matrix.dtype)
  total = jnp.zeros((num_tasks,), gram_matrix.dtype)
  for i in range(num_tasks):
    a = eye[i]  # g_i' = sum_k a_k g_k
    for position in range(num_tasks):
      j = orders[i, position]
      dot, norm2 = a @ gram_matrix[:, j], gram_matrix[j, j]
      conflict = (j != i) & (dot < 0) & (norm2 > 0)
      a = a - jnp.where(conflict, dot / jnp.where(norm2 > 0, norm2, 1.0), 0.0) * eye[j]
    total = total + a
  return total


def pcgrad(task_grads, key: jax.Array):
  """(PCGrad's update, the tasks' Gram matrix) for parameters whose per-task gradients are `task_grads` (leading
  task axis); `key` draws each task's projection order."""
  num_tasks = jax.tree.leaves(task_grads)[0].shape[0]
  orders = jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(jax.random.split(key, num_tasks))
  gram_matrix = gram(task_grads)
  c = pcgrad_coefficients(gram_matrix, orders)
  return jax.tree.map(lambda g: jnp.tensordot(c.astype(g.dtype), g, axes=1), task_grads), gram_matrix


def conflict_fraction(gram_matrix: jax.Array) -> jax.Array:
  """The fraction of task pairs whose gradients conflict (negative dot product)."""
  upper = jnp.triu(jnp.ones_like(gram_matrix, dtype=bool), k=1)
  return jnp.sum(upper & (gram_matrix < 0)) / jnp.maximum(jnp.sum(upper), 1)


def optimizer(method: str, model_tx: optax.GradientTransformation,
              learning_rate: float) -> optax.GradientTransformation:
  """The model's optimizer, plus plain Adam at `learning_rate` for the method's learned parameters."""
  if method != "uncertainty":
    return model_tx
  labels = lambda params: {k: jax.tree.map(lambda _: "weighting" if k == "weighting" else "model", v)
                           for k, v in params.items()}
  return optax.multi_transform({"model": model_tx, "weighting": optax.adam(learning_rate)}, labels)


def logged_weights(params: dict, layout) -> dict[str, float]:
  """`train/<task>/weight` of a loss weighting with learned parameters (uncertainty: w_t exp(-s_t)); else empty."""
  if "weighting" not in params:
    return {}
  values = np.asarray(effective_weights(jnp.asarray(layout.weights), params["weighting"])).tolist()
  return {f"train/{name}/weight": v for name, v in zip(layout.names, values)}
