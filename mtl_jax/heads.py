"""Task heads as pure functions: `init(rng, ...) -> params` and `apply(params, features) -> logits`.

Each kind of task has one grouped head: a dense layer whose outputs are its tasks' logits side by side. The text
kinds' heads (classification, multilabel, regression) read the pooled text features [B, H]; the tagging head reads
every token's hidden state [B, L, H]. `split_groups` cuts a head's output into the tasks' slices, as the layout says.
"""

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

if TYPE_CHECKING:  # tasks -> kinds -> heads: the layout type only for annotations
  from mtl_jax.tasks import Layout

POOLINGS = ("cls", "mean")
INITS = ("normal", "xavier")  # config.encoder.head_init


def pool(hidden: jax.Array, mask: jax.Array, kind: str, slots: int = 0) -> jax.Array:
  """[B, L, H] hidden states -> [B, H] text features: the first token (`cls`) or the masked mean (`mean`). Packed
  (`slots` > 0; `mask` holds each token's text number in its row, 1 .. slots, 0: padding): [B * slots, H], the
  features of each row's texts (an empty slot's are 0)."""
  if slots:
    return pool_packed(hidden, mask, kind, slots)
  if kind == "cls":
    return hidden[:, 0]
  if kind == "mean":  # summed in float32: bfloat16 cannot count past 256 tokens exactly
    m = mask[..., None].astype(jnp.float32)
    return ((hidden.astype(jnp.float32) * m).sum(1) / jnp.maximum(m.sum(1), 1)).astype(hidden.dtype)
  raise ValueError(f"unknown pooling {kind!r}; expected one of {POOLINGS}")


def pool_packed(hidden: jax.Array, mask: jax.Array, kind: str, slots: int) -> jax.Array:
  """`pool` of packed rows: each text's tokens picked by a [B, L, slots] membership matrix, summed in float32."""
  member = (mask[:, :, None] == jnp.arange(1, slots + 1)).astype(jnp.float32)
  if kind == "cls":
    member = member * (jnp.cumsum(member, axis=1) == 1)  # each text's first token
  elif kind != "mean":
    raise ValueError(f"unknown pooling {kind!r}; expected one of {POOLINGS}")
  features = jnp.einsum("bls,blh->bsh", member, hidden.astype(jnp.float32))
  if kind == "mean":
    features = features / jnp.maximum(member.sum(1), 1)[..., None]
  return features.reshape(-1, hidden.shape[-1]).astype(hidden.dtype)


def init_grouped(rng: jax.Array, features: int, outputs: int, init: str = "normal") -> dict:
  """One dense layer [features, outputs]; `outputs` is the sum of its tasks' widths.

  "normal": kernel ~ truncated normal, std 0.02, bias 0 (BERT's and transformers' classifier heads). "xavier": Flair's
  decoder, kernel ~ U(+-sqrt(6 / (features + outputs))) (torch's xavier_uniform_), bias ~ U(+-1 / sqrt(features))
  (nn.Linear's default): about 4x the normal kernel for 384 features. The scale matters at small learning rates:
  Adam moves a head weight by about the learning rate per step, and the encoder's updates reach the logits through the
  kernel, so a tiny kernel leaves both slow (issue 15: dev XPOS 0.76 -> 0.88 after one epoch at lr 5e-5, batch 4).
  """
  if init == "xavier":
    kernel_rng, bias_rng = jax.random.split(rng)
    bound, bias_bound = (6 / (features + outputs)) ** 0.5, 1 / features ** 0.5
    return {"kernel": jax.random.uniform(kernel_rng, (features, outputs), jnp.float32, -bound, bound),
            "bias": jax.random.uniform(bias_rng, (outputs,), jnp.float32, -bias_bound, bias_bound)}
  if init != "normal":
    raise ValueError(f"unknown head init {init!r}; expected one of {INITS}")
  kernel = 0.02 * jax.random.truncated_normal(rng, -2, 2, (features, outputs), jnp.float32)
  return {"kernel": kernel, "bias": jnp.zeros((outputs,), jnp.float32)}


def apply_grouped(params: dict, features: jax.Array) -> jax.Array:
  """[..., H] -> [..., outputs] logits, computed in float32 whatever the compute dtype: a regression score in
  bfloat16 would keep 8 bits (1234.567 -> 1232), and thresholds and the float32 export would disagree."""
  return features.astype(jnp.float32) @ params["kernel"] + params["bias"]


def split_groups(logits: jax.Array, layout: "Layout", kind: str) -> dict[int, jax.Array]:
  """A kind's head output [..., sum K] -> {task position: its [..., K_t] logits}."""
  return {t: logits[..., layout.offsets[t]:layout.offsets[t] + layout.tasks[t].width]
          for t in layout.of_kind(kind)}
