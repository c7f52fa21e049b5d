"""The optimizer's parameter groups against an AdamW written out in numpy, on a tiny tree shaped like the model's
(encoder embeddings and layers, a final norm, heads), one group against a plain single AdamW, and the gradient
clipping against PyTorch's."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from mtl_jax import optim, schema

SHAPES = {"encoder": {"embeddings": {"word": (5, 3), "norm": {"scale": (3,)}},
                      "layer_0": {"query": {"kernel": (3, 3), "bias": (3,)}},
                      "layer_1": {"query": {"kernel": (3, 3), "bias": (3,)}},
                      "final_norm": {"scale": (3,)}},
          "heads": {"tagging": {"kernel": (3, 2), "bias": (2,)}}}
NUM_LAYERS, TOTAL_STEPS = 2, 6


def train_config(**overrides):
  c = schema.defaults().train
  c.update({**dict(learning_rate=1e-2, warmup_steps=2, weight_decay=0.1, grad_clip=0.5), **overrides})
  return c


def tree(rng, scale=1.0):
  return jax.tree.map(lambda shape: jnp.asarray(scale * rng.normal(size=shape), jnp.float32), SHAPES,
                      is_leaf=lambda x: isinstance(x, tuple))


def run(tx, params, grads):
  """The params after one update per gradient in `grads`."""
  state = tx.init(params)
  for g in grads:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


def reference_adamw(params, grads, rates, cfg, b1=0.9, b2=0.999, eps=1e-8):
  """AdamW in float64 numpy: global-norm clipping, then per parameter m, v, bias correction, decoupled weight decay
  (not on 1-d parameters) at peak rate `rates[path]` x the warmup-then-linear-decay shape."""
  flat = {jax.tree_util.keystr(k): np.asarray(v, np.float64) for k, v in jax.tree_util.tree_leaves_with_path(params)}
  m, v = ({k: np.zeros_like(p) for k, p in flat.items()} for _ in range(2))
  for t, g_tree in enumerate(grads):
    g = {jax.tree_util.keystr(k): np.asarray(x, np.float64) for k, x in jax.tree_util.tree_leaves_with_path(g_tree)}
    norm = np.sqrt(sum(np.sum(x ** 2) for x in g.values()))
    g = {k: x * min(1.0, cfg.grad_clip / norm) for k, x in g.items()}
    warmup = cfg.warmup_steps
    shape = t / warmup if t < warmup else 1 - (t - warmup) / (TOTAL_STEPS - warmup)
    for k in flat:
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
      adam = (m[k] / (1 - b1 ** (t + 1))) / (np.sqrt(v[k] / (1 - b2 ** (t + 1))) + eps)
      decay = cfg.weight_decay * flat[k] if flat[k].ndim > 1 else 0.0
      flat[k] = flat[k] - rates[k] * shape * (adam + decay)
  return flat


def rate_of(path: str, lr: float, head_lr: float, decay: float) -> float:
  """The peak rate the module docstring promises a parameter: heads, final norm (top), layer i, embeddings."""
  if path.startswith("['heads']"):
    return head_lr
  for i in range(NUM_LAYERS):
    if f"['layer_{i}']" in path:
      return lr * decay ** (NUM_LAYERS - i)
  return lr * decay ** (NUM_LAYERS + 1) if "['embeddings']" in path else lr


@pytest.mark.parametrize("head_lr,decay", [(3e-2, 1.0), (0.0, 0.5), (5e-2, 0.8)])
def test_each_group_follows_numpy_adamw_at_its_rate(head_lr, decay):
  rng = np.random.default_rng(0)
  cfg = train_config(head_learning_rate=head_lr, layer_decay=decay)
  params, grads = tree(rng), [tree(rng, 0.3) for _ in range(4)]  # norms ~1-2: clipped to 0.5
  tx, _ = optim.build(cfg, TOTAL_STEPS, NUM_LAYERS)
  got = {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(run(tx, params, grads))}
  rates = {k: rate_of(k, cfg.learning_rate, head_lr or cfg.learning_rate, decay) for k in got}
  want = reference_adamw(params, grads, rates, cfg)
  for k in got:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7, err_msg=k)


def single_adamw(cfg):
  """The optimizer before parameter groups (mtl_jax/optim.py at 6fe7ab1), written out: one group must equal it."""
  schedule = optim.learning_rate_schedule(cfg, TOTAL_STEPS)
  mask = lambda params: jax.tree.map(lambda x: x.ndim > 1, params)
  return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adamw(schedule, weight_decay=cfg.weight_decay,
                                                                           mask=mask))


def test_one_group_is_a_single_adamw_bit_for_bit():
  rng = np.random.default_rng(1)
  cfg = train_config(head_learning_rate=0.0, layer_decay=1.0)  # groups off
  params, grads = tree(rng), [tree(rng, 0.3) for _ in range(3)]
  want = run(single_adamw(cfg), params, grads)
  for tx in (optim.build(cfg, TOTAL_STEPS, NUM_LAYERS)[0],
             optim.build(train_config(head_learning_rate=cfg.learning_rate), TOTAL_STEPS, NUM_LAYERS)[0]):
    # one group, and two groups at the same rate (multi_transform, each group's AdamW): identical updates
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), run(tx, params, grads), want)


def test_layer_decay_scales_each_layers_first_step():
  """Adam's first step moves every entry by its rate (|m / sqrt(v)| = 1): the step sizes are the group rates."""
  cfg = train_config(learning_rate=1e-3, warmup_steps=0, decay="constant", weight_decay=0.0, grad_clip=0.0,
                     layer_decay=0.5, head_learning_rate=4e-3)
  params = jax.tree.map(jnp.zeros_like, tree(np.random.default_rng(2)))
  moved = run(optim.build(cfg, TOTAL_STEPS, NUM_LAYERS)[0], params, [jax.tree.map(jnp.ones_like, params)])
  step = {k[0].key if k[0].key == "heads" else k[1].key: float(np.abs(np.asarray(v)).max())
          for k, v in jax.tree_util.tree_leaves_with_path(moved)}
  assert step == pytest.approx({"heads": 4e-3, "final_norm": 1e-3, "layer_1": 5e-4, "layer_0": 2.5e-4,
                                "embeddings": 1.25e-4}, rel=1e-5)


def test_groups_leave_the_uncertainty_weights_to_their_own_adam():
  cfg = train_config(loss_weighting="uncertainty", head_learning_rate=2e-2, layer_decay=0.5, grad_clip=0.0,
                     warmup_steps=0, decay="constant", weighting_learning_rate=0.1)
  params = {**tree(np.random.default_rng(3)), "weighting": {"log_var": jnp.zeros((2,), jnp.float32)}}
  grads = jax.tree.map(jnp.ones_like, params)
  moved = run(optim.build(cfg, TOTAL_STEPS, NUM_LAYERS)[0], params, [grads])
  np.testing.assert_allclose(moved["weighting"]["log_var"], [-0.1, -0.1], rtol=1e-5)  # Adam at 0.1, no decay
  step = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), moved, params)
  np.testing.assert_allclose(step["heads"]["tagging"]["bias"], -2e-2 * np.ones(2), rtol=1e-4)  # its own rate
  np.testing.assert_allclose(step["encoder"]["layer_0"]["query"]["bias"], -1e-2 * 0.25 * np.ones(3), rtol=1e-4)


@pytest.mark.parametrize("scale", [0.0, 0.05, 3.0])  # zero, under the norm, over it
def test_clipping_scales_to_the_norm_as_torch_clips(scale):
  grads = tree(np.random.default_rng(4), scale)
  got, _ = optim.clip_by_global_norm(0.5).update(grads, optax.EmptyState())
  leaves = [torch.tensor(np.asarray(g)) for g in jax.tree.leaves(grads)]
  for t in leaves:
    t.grad = t.clone()
  torch.nn.utils.clip_grad_norm_(leaves, 0.5)
  for g, t in zip(jax.tree.leaves(got), leaves):
    assert np.isfinite(np.asarray(g)).all()
    np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=1e-5)  # torch adds 1e-6 to the norm
  if scale < 1:  # under the norm: the gradients themselves, bit for bit
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), got, grads)
