"""The multi-task model: the shared Flax encoder, then one grouped head per kind of task, as init/apply functions.

Each kind's head reads what its kind says (classification the pooled text features, tagging every token's hidden
state); one encoder pass serves every task of a batch, whatever mix of tasks its examples are labelled for.
"""

import dataclasses

import jax
import jax.numpy as jnp

from mtl_jax import heads, kinds
from mtl_jax.encoders import Encoder, EncoderConfig
from mtl_jax.encoders.layers import dropout
from mtl_jax.tasks import Layout

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}  # config.encoder.dtype -> compute dtype


@dataclasses.dataclass(frozen=True)
class Model:
  encoder: Encoder
  layout: Layout
  pooling: str = "mean"
  head_dropout: float = 0.1
  head_init: str = "normal"  # heads.INITS; training only (a checkpoint holds the trained heads)

  @classmethod
  def from_config(cls, encoder_cfg, architecture: EncoderConfig, layout: Layout,
                  blocks: tuple[int, ...] = ()) -> "Model":
    """The model `config.encoder` describes, for the encoder `architecture` and the tasks of `layout`; `blocks`: the
    shorter packed lengths, trained with attention within blocks of them (`Encoder`)."""
    return cls(Encoder(architecture, DTYPES[encoder_cfg.dtype], encoder_cfg.remat, tuple(blocks)), layout,
               encoder_cfg.pooling, encoder_cfg.head_dropout, encoder_cfg.head_init)

  @classmethod
  def from_meta(cls, meta: dict) -> "Model":
    """The model a checkpoint's meta describes, for inference."""
    encoder = Encoder(EncoderConfig.from_dict(meta["encoder"]), DTYPES[meta.get("dtype", "float32")])
    return cls(encoder, Layout.from_dict(meta["tasks"]), meta["pooling"])

  @property
  def kinds(self) -> tuple[kinds.Kind, ...]:
    """The kinds of head this layout needs."""
    return kinds.of_layout(self.layout)

  def init(self, rng: jax.Array) -> dict:
    enc_rng, head_rng = jax.random.split(rng)
    ids = jnp.zeros((1, 8), jnp.int32)
    hidden = self.encoder.config.hidden_size
    return {"encoder": self.encoder.init(enc_rng, ids, jnp.ones_like(ids))["params"],
            "heads": {k.name: heads.init_grouped(jax.random.fold_in(head_rng, i), hidden, self.layout.total(k.name),
                                                 self.head_init)
                      for i, k in enumerate(self.kinds)}}

  def _dropout(self, x: jax.Array, rng: jax.Array | None, salt: int) -> jax.Array:
    if rng is None or self.head_dropout <= 0:
      return x
    return dropout(x, self.head_dropout, jax.random.fold_in(rng, salt))

  def logits(self, params: dict, batch: dict, rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """{kind: float32 logits}: [B, width] for the text kinds, [B, L, width] for tagging (a kind's width: the sum of
    its tasks' outputs); dropout when `rng` is given."""
    train = rng is not None
    hidden = self.encoder.apply({"params": params["encoder"]}, batch["input_ids"], batch["attention_mask"],
                                batch.get("token_type_ids"), deterministic=not train,
                                rngs={"dropout": rng} if train else {})
    return {k.name: heads.apply_grouped(params["heads"][k.name],
                                        self._dropout(k.features(hidden, batch, self.pooling), rng, k.salt))
            for k in self.kinds}

  def outputs(self, logits: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """What evaluation and prediction gather, per kind (classification: probabilities; tagging: tag ids)."""
    return {k.name: k.outputs(list(heads.split_groups(logits[k.name], self.layout, k.name).values()))
            for k in self.kinds}
