"""The optimizer and its learning-rate schedule, from `config.train`."""

import jax
import optax

from mtl_jax import weighting

DECAYS = ("linear", "cosine", "constant")  # config.train.decay: after warmup, to 0 at the last step (or constant)


def learning_rate_schedule(train_cfg, total_steps: int) -> optax.Schedule:
  """Linear warmup to the peak, then linear or cosine decay to 0 at the last step (or constant)."""
  peak, warmup = train_cfg.learning_rate, min(train_cfg.warmup_steps, total_steps)
  decay_steps = max(total_steps - warmup, 1)
  decays = dict(zip(DECAYS, (optax.linear_schedule(peak, 0.0, decay_steps),
                             optax.cosine_decay_schedule(peak, decay_steps), optax.constant_schedule(peak))))
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decays[train_cfg.decay]], [warmup])


def make_optimizer(train_cfg, schedule: optax.Schedule) -> optax.GradientTransformation:
  """AdamW with gradient clipping; no weight decay on biases and LayerNorm scales (1-d parameters)."""
  decay_mask = lambda params: jax.tree.map(lambda x: x.ndim > 1, params)
  clip = [optax.clip_by_global_norm(train_cfg.grad_clip)] if train_cfg.grad_clip > 0 else []
  return optax.chain(*clip, optax.adamw(schedule, weight_decay=train_cfg.weight_decay, mask=decay_mask))


def build(train_cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer, schedule) of a run of `total_steps`: AdamW on the model, and the loss weighting's own optimizer for
  its learned parameters (if any)."""
  schedule = learning_rate_schedule(train_cfg, total_steps)
  tx = make_optimizer(train_cfg, schedule)
  return weighting.optimizer(train_cfg.loss_weighting, tx, train_cfg.weighting_learning_rate), schedule
