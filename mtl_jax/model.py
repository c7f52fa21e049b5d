"""The multi-task model: the shared Flax encoder, pooling and the grouped head, as init/apply functions."""

import dataclasses

import jax
import jax.numpy as jnp

from mtl_jax import heads
from mtl_jax.encoder import Encoder
from mtl_jax.tasks import Layout


@dataclasses.dataclass(frozen=True)
class Model:
  encoder: Encoder
  layout: Layout
  pooling: str = "mean"
  head_dropout: float = 0.1

  def init(self, rng: jax.Array) -> dict:
    enc_rng, head_rng = jax.random.split(rng)
    ids = jnp.zeros((1, 8), jnp.int32)
    return {"encoder": self.encoder.init(enc_rng, ids, jnp.ones_like(ids))["params"],
            "heads": {"grouped": heads.init_grouped(head_rng, self.encoder.config.hidden_size, self.layout)}}

  def logits(self, params: dict, batch: dict, rng: jax.Array | None = None) -> jax.Array:
    """[B, sum(group_sizes)] float32 logits; dropout is on when `rng` is given (training)."""
    train = rng is not None
    hidden = self.encoder.apply({"params": params["encoder"]}, batch["input_ids"], batch["attention_mask"],
                                deterministic=not train, rngs={"dropout": rng} if train else {})
    features = heads.pool(hidden, batch["attention_mask"], self.pooling)
    if train and self.head_dropout > 0:
      keep = jax.random.bernoulli(jax.random.fold_in(rng, 1), 1 - self.head_dropout, features.shape)
      features = jnp.where(keep, features / (1 - self.head_dropout), 0).astype(features.dtype)
    return heads.apply_grouped(params["heads"]["grouped"], features)

  def probabilities(self, logits: jax.Array) -> jax.Array:
    """Softmax within each task's group, side by side: [B, sum(group_sizes)]."""
    return jnp.concatenate([jax.nn.softmax(g, axis=-1) for g in heads.split_groups(logits, self.layout)], axis=-1)
