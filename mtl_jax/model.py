"""The multi-task model: the shared Flax encoder, then one grouped head per kind of task, as init/apply functions.

Classification tasks read the pooled text features, tagging tasks every token's hidden state; one encoder pass
serves every task of a batch, whatever mix of tasks its examples are labelled for.
"""

import dataclasses

import jax
import jax.numpy as jnp

from mtl_jax import heads
from mtl_jax.encoder import Encoder
from mtl_jax.tasks import Layout

HEAD_KINDS = ("classification", "tagging")


@dataclasses.dataclass(frozen=True)
class Model:
  encoder: Encoder
  layout: Layout
  pooling: str = "mean"
  head_dropout: float = 0.1

  @property
  def kinds(self) -> tuple[str, ...]:
    """The kinds of head this layout needs."""
    return tuple(k for k in HEAD_KINDS if self.layout.of_kind(k))

  def init(self, rng: jax.Array) -> dict:
    enc_rng, head_rng = jax.random.split(rng)
    ids = jnp.zeros((1, 8), jnp.int32)
    hidden = self.encoder.config.hidden_size
    return {"encoder": self.encoder.init(enc_rng, ids, jnp.ones_like(ids))["params"],
            "heads": {k: heads.init_grouped(jax.random.fold_in(head_rng, i), hidden, self.layout.total(k))
                      for i, k in enumerate(self.kinds)}}

  def _dropout(self, x: jax.Array, rng: jax.Array | None, salt: int) -> jax.Array:
    if rng is None or self.head_dropout <= 0:
      return x
    keep = jax.random.bernoulli(jax.random.fold_in(rng, salt), 1 - self.head_dropout, x.shape)
    return jnp.where(keep, x / (1 - self.head_dropout), 0).astype(x.dtype)

  def logits(self, params: dict, batch: dict, rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """{kind: float32 logits}: [B, sum K] for classification, [B, L, sum K] for tagging; dropout when `rng` is given."""
    train = rng is not None
    hidden = self.encoder.apply({"params": params["encoder"]}, batch["input_ids"], batch["attention_mask"],
                                deterministic=not train, rngs={"dropout": rng} if train else {})
    out = {}
    if "classification" in self.kinds:
      features = self._dropout(heads.pool(hidden, batch["attention_mask"], self.pooling), rng, 1)
      out["classification"] = heads.apply_grouped(params["heads"]["classification"], features)
    if "tagging" in self.kinds:
      out["tagging"] = heads.apply_grouped(params["heads"]["tagging"], self._dropout(hidden, rng, 2))
    return out

  def probabilities(self, logits: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Softmax within each task's group, side by side, for every kind."""
    return {kind: jnp.concatenate([jax.nn.softmax(g, axis=-1) for g in
                                   heads.split_groups(lg, self.layout, kind).values()], axis=-1)
            for kind, lg in logits.items()}
