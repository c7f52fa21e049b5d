"""Task heads as pure functions: `init(rng, ...) -> params` and `apply(params, features) -> logits`."""

import jax
import jax.numpy as jnp

from mtl_jax.tasks import Layout

POOLINGS = ("cls", "mean")


def pool(hidden: jax.Array, mask: jax.Array, kind: str) -> jax.Array:
  """[B, L, H] hidden states -> [B, H] text features: the first token (`cls`) or the masked mean (`mean`)."""
  if kind == "cls":
    return hidden[:, 0]
  if kind == "mean":
    m = mask[..., None].astype(hidden.dtype)
    return (hidden * m).sum(1) / jnp.maximum(m.sum(1), 1)
  raise ValueError(f"unknown pooling {kind!r}; expected one of {POOLINGS}")


def init_grouped(rng: jax.Array, features: int, layout: Layout) -> dict:
  """One dense layer whose outputs are every task's logits side by side ([H, sum(group_sizes)])."""
  kernel = 0.02 * jax.random.truncated_normal(rng, -2, 2, (features, layout.total_classes), jnp.float32)
  return {"kernel": kernel, "bias": jnp.zeros((layout.total_classes,), jnp.float32)}


def apply_grouped(params: dict, features: jax.Array) -> jax.Array:
  """[B, H] -> [B, sum(group_sizes)] logits, in float32 whatever the compute dtype."""
  logits = features @ params["kernel"].astype(features.dtype) + params["bias"].astype(features.dtype)
  return logits.astype(jnp.float32)


def split_groups(logits: jax.Array, layout: Layout) -> list[jax.Array]:
  """[B, sum(group_sizes)] -> one [B, K_t] array per task, in layout order."""
  return [logits[:, o:o + k] for o, k in zip(layout.offsets, layout.group_sizes)]
