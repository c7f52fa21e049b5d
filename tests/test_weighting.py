"""Loss weighting: uncertainty weighting and PCGrad against numpy references written from the papers, on tiny
problems, and inside the real train step against per-task gradients taken one task at a time."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from runs import assert_same_run, crash_in_step, read_history, smoke

from mtl_jax import weighting
from mtl_jax.encoders import Encoder, EncoderConfig
from mtl_jax.losses import grouped_loss, label_counts, task_means
from mtl_jax.model import Model
from mtl_jax.predict import Predictor
from mtl_jax.steps import train_step
from mtl_jax.tasks import Layout, Task
from mtl_jax.train import train_and_evaluate


def reference_pcgrad(grads: np.ndarray, orders: np.ndarray) -> np.ndarray:
  """Yu et al. (2020), Algorithm 1, on flat vectors [T, N]: project each g_i against the others in its order."""
  projected = []
  for i in range(len(grads)):
    g = grads[i].astype(np.float64).copy()
    for j in orders[i]:
      if j == i:
        continue
      dot = g @ grads[j]
      if dot < 0 and grads[j] @ grads[j] > 0:
        g -= dot / (grads[j] @ grads[j]) * grads[j]
    projected.append(g)
  return np.sum(projected, axis=0)


def random_orders(rng, num_tasks):
  return np.stack([rng.permutation(num_tasks) for _ in range(num_tasks)])


# ---------------------------------------------------------------------------------------------------------------
# PCGrad.

def test_pcgrad_two_conflicting_gradients_by_hand():
  g1, g2 = np.array([1.0, 0.0]), np.array([-1.0, 1.0])  # g1 . g2 = -1 < 0
  c = weighting.pcgrad_coefficients(jnp.asarray(weighting.gram(jnp.stack([g1, g2]))), jnp.array([[0, 1], [1, 0]]))
  update = np.asarray(c) @ np.stack([g1, g2])
  # g1' = g1 + 1/2 g2 = (0.5, 0.5); g2' = g2 + 1 g1 = (0, 1); sum (0.5, 1.5)
  np.testing.assert_allclose(update, [0.5, 1.5], atol=1e-6)


@pytest.mark.parametrize("num_tasks,seed", [(2, 0), (3, 1), (4, 2), (5, 3)])
def test_pcgrad_matches_the_algorithm_on_random_gradients(num_tasks, seed):
  rng = np.random.default_rng(seed)
  flat = rng.normal(size=(num_tasks, 7))
  flat[0] *= 5  # very different norms, and conflicts (random directions in 7-d conflict about half the time)
  orders = random_orders(rng, num_tasks)
  tree = {"a": jnp.asarray(flat[:, :4].reshape(num_tasks, 2, 2), jnp.float32), "b": jnp.asarray(flat[:, 4:])}
  c = weighting.pcgrad_coefficients(weighting.gram(tree), jnp.asarray(orders))
  update = jax.tree.map(lambda g: jnp.tensordot(c, g, axes=1), tree)
  got = np.concatenate([np.asarray(update["a"]).ravel(), np.asarray(update["b"])])
  np.testing.assert_allclose(got, reference_pcgrad(flat, orders), rtol=1e-4, atol=1e-5)


def test_pcgrad_projection_removes_the_conflict_of_two_tasks():
  rng = np.random.default_rng(4)
  for _ in range(20):
    g = rng.normal(size=(2, 5))
    c = np.asarray(weighting.pcgrad_coefficients(jnp.asarray(g @ g.T), jnp.array([[1, 0], [0, 1]])))
    # with two tasks g_1' = g_1 - min(g_1.g_2, 0)/|g_2|^2 g_2, which is orthogonal to g_2 or agrees with it
    g1_projected = g[0] - min(g[0] @ g[1], 0) / (g[1] @ g[1]) * g[1]
    assert g1_projected @ g[1] >= -1e-9
    np.testing.assert_allclose(c @ g, reference_pcgrad(g, np.array([[1, 0], [0, 1]])), rtol=1e-5, atol=1e-6)


def test_pcgrad_leaves_agreeing_gradients_and_absent_tasks_alone():
  g = jnp.asarray([[1.0, 2.0, 0.0], [0.5, 0.1, 3.0], [0.0, 0.0, 0.0]])  # task 2 had no labels: zero gradient
  update, gram = weighting.pcgrad({"w": g}, jax.random.key(0))
  np.testing.assert_allclose(update["w"], np.asarray(g).sum(0), rtol=1e-6)
  assert float(weighting.conflict_fraction(gram)) == 0.0


def test_pcgrad_draws_orders_from_the_key():
  rng = np.random.default_rng(5)
  flat = rng.normal(size=(4, 6)).astype(np.float32)
  key = jax.random.key(7)
  update, gram = weighting.pcgrad({"w": jnp.asarray(flat)}, key)
  orders = np.asarray(jax.vmap(lambda k: jax.random.permutation(k, 4))(jax.random.split(key, 4)))
  np.testing.assert_allclose(update["w"], reference_pcgrad(flat, orders), rtol=1e-4, atol=1e-5)
  expected_conflicts = np.mean([flat[i] @ flat[j] < 0 for i in range(4) for j in range(i + 1, 4)])
  np.testing.assert_allclose(float(weighting.conflict_fraction(gram)), expected_conflicts)


# ---------------------------------------------------------------------------------------------------------------
# Uncertainty weighting.

def test_uncertainty_objective_and_gradients_match_the_formula():
  losses, s = np.array([0.7, 2.0, 0.0]), np.array([0.3, -0.5, 1.0])
  weights, present = np.array([1.0, 2.0, 1.0]), np.array([True, True, False])
  value, grads = jax.value_and_grad(lambda loss, log_var: weighting.objective(
      loss, present, jnp.asarray(weights), {"log_var": log_var}), argnums=(0, 1))(jnp.asarray(losses), jnp.asarray(s))
  expected = sum(w * (np.exp(-v) * loss + v / 2) for loss, v, w, p in zip(losses, s, weights, present) if p)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(grads[0], np.where(present, weights * np.exp(-s), 0), rtol=1e-6)
  np.testing.assert_allclose(grads[1], np.where(present, weights * (-np.exp(-s) * losses + 0.5), 0), rtol=1e-6)


def test_uncertainty_learns_the_inverse_loss_weighting():
  """For fixed task losses the learned weight exp(-s_t) goes to 1 / (2 L_t)."""
  losses = jnp.asarray([0.25, 1.0, 4.0])
  tx = optax.adam(0.05)
  grad = jax.grad(lambda p: weighting.objective(losses, jnp.ones(3, bool), jnp.ones(3), p))

  def step(carry, _):
    learned, opt_state = carry
    updates, opt_state = tx.update(grad(learned), opt_state)
    return (optax.apply_updates(learned, updates), opt_state), None

  learned = weighting.init("uncertainty", 3)
  (learned, _), _ = jax.lax.scan(step, (learned, tx.init(learned)), length=2000)
  np.testing.assert_allclose(weighting.effective_weights(jnp.ones(3), learned), 1 / (2 * np.asarray(losses)),
                             rtol=1e-2)


# ---------------------------------------------------------------------------------------------------------------
# Inside the train step.

LAYOUT = Layout((Task("a", "classification", ("x", "y", "z"), weight=1.0),
                 Task("b", "classification", ("p", "q"), weight=0.5),
                 Task("c", "classification", ("u", "v", "w", "t"), weight=2.0)))


def tiny_model(layout=LAYOUT) -> Model:
  config = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                         max_position_embeddings=32, dropout_rate=0.0, attention_dropout_rate=0.0)
  return Model(Encoder(config), layout, head_dropout=0.0)  # no dropout: the rng does not change the forward pass


def tiny_batch(layout=LAYOUT, n=8, length=12, seed=0) -> dict:
  rng = np.random.default_rng(seed)
  mask = (np.arange(length)[None] < rng.integers(3, length + 1, n)[:, None]).astype(np.int32)
  labels = np.stack([rng.integers(-1, k, n) for k in layout.group_sizes], 1).astype(np.int32)
  return {"input_ids": jnp.asarray(rng.integers(1, 50, (n, length)) * mask, jnp.int32),
          "attention_mask": jnp.asarray(mask), "labels": jnp.asarray(labels),
          "weights": jnp.asarray(rng.uniform(0.5, 1.5, (n, len(layout.tasks))), jnp.float32)}


def per_task_gradients(model: Model, params: dict, batch: dict) -> list[dict]:
  """Each task's gradient of w_t L_t, one jax.grad per task."""
  counts = label_counts(batch, model.layout)

  def task_loss(p, t):
    sums, _ = grouped_loss(model.logits(p, batch), batch, model.layout)
    return model.layout.weights[t] * task_means(sums, counts)[t]

  return [jax.jit(jax.grad(task_loss), static_argnums=1)(params, t) for t in range(len(model.layout.tasks))]


def sgd_step(model, params, batch, method, accumulation=1):
  """train_step with plain SGD at learning rate 1: the update is minus the gradient."""
  state = {"params": params, "opt_state": optax.sgd(1.0).init(params), "step": jnp.asarray(3, jnp.int32)}
  step = jax.jit(lambda s, b: train_step(s, b, model=model, tx=optax.sgd(1.0), dropout_key=jax.random.key(11),
                                         accumulation=accumulation, loss_weighting=method))
  new, out = step(state, batch)
  return jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), params, new["params"]), out


def test_train_step_pcgrad_equals_the_algorithm_on_per_task_gradients():
  model = tiny_model()
  params, batch = model.init(jax.random.key(0)), tiny_batch()
  grads, out = sgd_step(model, params, batch, "pcgrad")
  tasks = per_task_gradients(model, params, batch)
  flat = np.stack([jax.flatten_util.ravel_pytree(g["encoder"])[0] for g in tasks])
  rng = jax.random.fold_in(jax.random.key(11), 3)  # the step's key, as train_step derives it
  order_key = jax.random.fold_in(rng, weighting.ORDER_SALT)
  orders = np.asarray(jax.vmap(lambda k: jax.random.permutation(k, 3))(jax.random.split(order_key, 3)))
  np.testing.assert_allclose(jax.flatten_util.ravel_pytree(grads["encoder"])[0], reference_pcgrad(flat, orders),
                             rtol=2e-4, atol=1e-6)
  heads = sum(jax.flatten_util.ravel_pytree(g["heads"])[0] for g in tasks)  # heads: the plain sum
  np.testing.assert_allclose(jax.flatten_util.ravel_pytree(grads["heads"])[0], heads, rtol=1e-4, atol=1e-6)
  conflicts = np.mean([flat[i] @ flat[j] < 0 for i in range(3) for j in range(i + 1, 3)])
  assert float(out["gradient_conflicts"]) == pytest.approx(conflicts)
  static, _ = sgd_step(model, params, batch, "static")  # the same batch's summed gradient differs when tasks conflict
  if conflicts:
    assert not np.allclose(jax.flatten_util.ravel_pytree(static["encoder"])[0],
                           jax.flatten_util.ravel_pytree(grads["encoder"])[0])


def test_train_step_pcgrad_with_one_task_is_the_static_step():
  layout = Layout(LAYOUT.tasks[:1])
  model = tiny_model(layout)
  params, batch = model.init(jax.random.key(1)), tiny_batch(layout, seed=1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               sgd_step(model, params, batch, "pcgrad")[0], sgd_step(model, params, batch, "static")[0])


def test_train_step_uncertainty_gradients():
  model = tiny_model()
  params, batch = model.init(jax.random.key(2)), tiny_batch(seed=2)
  s = jnp.asarray([0.2, -0.3, 0.5])
  grads, out = sgd_step(model, {**params, "weighting": {"log_var": s}}, batch, "uncertainty")
  means = np.asarray(task_means(out["sums"], out["counts"]))
  w = np.asarray(LAYOUT.weights)
  np.testing.assert_allclose(grads["weighting"]["log_var"], w * (-np.exp(-s) * means + 0.5), rtol=1e-4)
  # the model's gradient is the static gradient with weights w_t exp(-s_t)
  reweighted = Model(model.encoder, Layout(tuple(dataclasses.replace(t, weight=float(t.weight * np.exp(-v)))
                                                 for t, v in zip(LAYOUT.tasks, np.asarray(s)))), head_dropout=0.0)
  static, _ = sgd_step(reweighted, params, batch, "static")
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
               {k: grads[k] for k in ("encoder", "heads")}, static)


@pytest.mark.parametrize("method", ["uncertainty", "pcgrad"])
def test_accumulated_step_equals_the_whole_batch(method):
  model = tiny_model()
  params, batch = model.init(jax.random.key(3)), tiny_batch(seed=3)
  if method == "uncertainty":
    params = {**params, "weighting": {"log_var": jnp.asarray([0.1, 0.0, -0.2])}}
  whole, out1 = sgd_step(model, params, batch, method)
  accumulated, out4 = sgd_step(model, params, batch, method, accumulation=4)
  np.testing.assert_allclose(out1["loss"], out4["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), whole, accumulated)


# ---------------------------------------------------------------------------------------------------------------
# End to end.

def test_uncertainty_run_logs_weights_and_resumes_exactly(table, tmp_path, monkeypatch):
  """The learned log-variances and their Adam state travel with the checkpoint; best/ keeps only the model."""
  config = lambda: smoke(table, **{"train.loss_weighting": "uncertainty"})
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  train_and_evaluate(config(), full)
  crash_in_step(6, config(), split, monkeypatch)  # after the step-4 checkpoint
  train_and_evaluate(config(), split)
  assert_same_run(split, full)
  weights = [{k: v for k, v in e.items() if k.endswith("/weight")} for e in read_history(full) if "train/loss" in e]
  assert all(sorted(w) == [f"train/{t}/weight" for t in ("sentiment", "topic", "urgency")] for w in weights)
  assert weights[0] != weights[-1]  # learned
  assert set(Predictor.load(full).params) == {"encoder", "heads"}


def test_pcgrad_run_on_chosen_tasks(table, tmp_path):
  """`train.tasks` keeps two of the table's three tasks; PCGrad logs how often their gradients conflict."""
  workdir = str(tmp_path / "run")
  train_and_evaluate(smoke(table, **{"train.loss_weighting": "pcgrad", "train.tasks": ("topic", "sentiment")}),
                     workdir)
  history = read_history(workdir)
  tasks = {k.split("/")[1] for e in history for k in e if k.startswith("eval/")} - {"mean", "std"}
  assert tasks == {"sentiment", "topic"}
  assert Predictor.load(workdir).layout.names == ("sentiment", "topic")  # in the table's label order
  conflicts = [e["train/gradient_conflicts"] for e in history if "train/loss" in e]
  assert conflicts and all(0 <= c <= 1 for c in conflicts)
