"""The optimizer and its learning-rate schedule, from `config.train`.

Parameter groups. The heads (every parameter outside the encoder) peak at `train.head_learning_rate` (by default 3e-3,
ten times the encoder's `train.learning_rate`); with `train.head_learning_rate` = 0 every parameter follows one
schedule (peak `train.learning_rate`), one AdamW. With `train.layer_decay` = d < 1 the encoder's parameters are
scaled by depth from the top, as in ELECTRA / BEiT: layer i (0-based, of L) gets d**(L - i), the embeddings (and
DeBERTa's relative-position table, an input of every layer) the deepest factor d**(L + 1), parameters above the last
layer (a pre-norm encoder's final norm) d**0 = 1. Each group has the same warmup and decay shape, scaled; clipping
is over the global gradient norm of all groups together (`clip_by_global_norm`), and AdamW's weight decay (applied
as lr * weight_decay * param, as PyTorch's AdamW) follows each group's rate.
"""

import re

import jax
import jax.numpy as jnp
import optax

from mtl_jax import weighting

DECAYS = ("linear", "cosine", "constant")  # config.train.decay: after warmup, to 0 at the last step (or constant)
HEADS = "heads"  # the group of every parameter outside the encoder
EMBEDDINGS = ("embeddings", "rel_embeddings", "rel_norm")  # encoder parameters below the first layer
LAYER = re.compile(r"layer_(\d+)")


def learning_rate_schedule(train_cfg, total_steps: int) -> optax.Schedule:
  """Linear warmup to the peak, then linear or cosine decay to 0 at the last step (or constant)."""
  peak, warmup = train_cfg.learning_rate, min(train_cfg.warmup_steps, total_steps)
  decay_steps = max(total_steps - warmup, 1)
  decays = dict(zip(DECAYS, (optax.linear_schedule(peak, 0.0, decay_steps),
                             optax.cosine_decay_schedule(peak, decay_steps), optax.constant_schedule(peak))))
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decays[train_cfg.decay]], [warmup])


def scaled(schedule: optax.Schedule, factor: float) -> optax.Schedule:
  """The schedule times `factor`; the schedule itself at factor 1, so that group's updates stay bit-identical."""
  return schedule if factor == 1.0 else (lambda step: factor * schedule(step))


def grouped(train_cfg) -> bool:
  """Whether the config asks for parameter groups (a head rate or layer decay); otherwise one AdamW for all."""
  return train_cfg.head_learning_rate > 0 or train_cfg.layer_decay != 1.0


def encoder_depth(name: str, num_layers: int) -> int:
  """Steps below the top of a top-level encoder parameter (`layer_3`, `embeddings`, ...): the exponent of its
  layer decay."""
  if name in EMBEDDINGS:
    return num_layers + 1
  if match := LAYER.fullmatch(name):
    return num_layers - int(match.group(1))
  return 0


def group_factors(train_cfg, num_layers: int) -> dict[str, float]:
  """{group label: its peak rate / train.learning_rate}: the heads, then the encoder as one group or by depth."""
  head = train_cfg.head_learning_rate / train_cfg.learning_rate if train_cfg.head_learning_rate > 0 else 1.0
  if train_cfg.layer_decay == 1.0:
    return {HEADS: head, "encoder": 1.0}
  return {HEADS: head, **{f"encoder_{d}": train_cfg.layer_decay ** d for d in range(num_layers + 2)}}


def param_labels(params: dict, train_cfg, num_layers: int) -> dict:
  """The group label of every parameter, as a prefix tree of `params`: the encoder's top-level modules, the rest
  (heads, and a loss weighting's parameters that its own optimizer masks out) as heads."""
  def encoder_labels(encoder: dict) -> dict:
    if train_cfg.layer_decay == 1.0:
      return "encoder"
    return {name: f"encoder_{encoder_depth(name, num_layers)}" for name in encoder}
  return {k: encoder_labels(v) if k == "encoder" else HEADS for k, v in params.items()}


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
  """Scales every gradient by min(1, max_norm / global norm), as PyTorch's clip_grad_norm_ multiplies them (without
  its 1e-6 in the denominator). Below the norm the scale is exactly 1 (the gradients pass bit for bit); a zero norm
  gives 1, not NaN. optax.clip_by_global_norm selects between each gradient and its divided copy instead, and XLA
  writes that copy out for AdamW's two moment updates to read beside the gradient: three more passes over every
  gradient per step (47 MB each for MiniLM's embedding table), where a scalar factor fuses into the moment updates
  (in the compiled step; its time on 2 cores moves within its noise)."""
  def update(updates, state, params=None):
    del params
    scale = jnp.minimum(1.0, max_norm / optax.tree.norm(updates))
    return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state
  return optax.GradientTransformation(optax.init_empty_state, update)


def adamw(train_cfg, schedule: optax.Schedule) -> optax.GradientTransformation:
  """AdamW without weight decay on biases and LayerNorm scales (1-d parameters)."""
  decay_mask = lambda params: jax.tree.map(lambda x: x.ndim > 1, params)
  return optax.adamw(schedule, weight_decay=train_cfg.weight_decay, mask=decay_mask)


def make_optimizer(train_cfg, schedule: optax.Schedule, num_layers: int = 0) -> optax.GradientTransformation:
  """Global gradient clipping, then AdamW: one for all parameters, or one per parameter group (see the module's
  docstring) through optax.multi_transform. `num_layers` (the encoder's) is needed for layer decay only."""
  if train_cfg.layer_decay != 1.0 and num_layers <= 0:
    raise ValueError("layer decay needs the encoder's number of layers")
  clip = [clip_by_global_norm(train_cfg.grad_clip)] if train_cfg.grad_clip > 0 else []
  if not grouped(train_cfg):
    return optax.chain(*clip, adamw(train_cfg, schedule))
  groups = {label: adamw(train_cfg, scaled(schedule, factor))
            for label, factor in group_factors(train_cfg, num_layers).items()}
  return optax.chain(*clip, optax.multi_transform(groups, lambda p: param_labels(p, train_cfg, num_layers)))


def build(train_cfg, total_steps: int, num_layers: int = 0) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer, schedule) of a run of `total_steps`: AdamW on the model, and the loss weighting's own optimizer for
  its learned parameters (if any). The schedule is the encoder's (its top layer's, with layer decay)."""
  schedule = learning_rate_schedule(train_cfg, total_steps)
  tx = make_optimizer(train_cfg, schedule, num_layers)
  return weighting.optimizer(train_cfg.loss_weighting, tx, train_cfg.weighting_learning_rate), schedule
