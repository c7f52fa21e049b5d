"""What the encoder families share: the architecture record, the embeddings, the post-LayerNorm transformer layer
and the encoder that stacks them. A family (a module beside this one) says how its `config.json` and weight names
map onto these; the parameter tree is the same for all (`embeddings/word`, `layer_3/query`, ...), so sharding rules,
heads and checkpoints do not depend on the family."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"gelu": lambda x: nn.gelu(x, approximate=False), "gelu_new": nn.gelu, "relu": nn.relu}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Architecture of an encoder: the Hugging Face config fields we use, under one set of names."""
  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  intermediate_size: int = 1536
  max_position_embeddings: int = 512
  type_vocab_size: int = 2  # 0: no token-type embedding (DistilBERT)
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1
  family: str = "bert"  # config.json's model_type
  embedding_size: int = 0  # width of the embeddings when it differs from hidden_size (ELECTRA), else 0
  padding_idx: int = -1  # RoBERTa-style positions (counted over real tokens from padding_idx + 1), else -1

  @property
  def max_length(self) -> int:
    """The longest sequence the position embeddings cover."""
    return self.max_position_embeddings - (self.padding_idx + 1 if self.padding_idx >= 0 else 0)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


class _Part(nn.Module):
  """A part of the encoder: the architecture and the compute dtype."""
  config: EncoderConfig
  dtype: jnp.dtype = jnp.float32


def position_ids(attention_mask, padding_idx: int):
  """0, 1, 2, ... per row; RoBERTa's scheme when padding_idx >= 0: real tokens count from padding_idx + 1 and
  padding sits at padding_idx (transformers derives the same from the ids; the mask gives it for any pad id)."""
  if padding_idx < 0:
    return jnp.arange(attention_mask.shape[1])[None, :]
  mask = (attention_mask > 0).astype(jnp.int32)
  return jnp.cumsum(mask, axis=1) * mask + padding_idx


class Embeddings(_Part):
  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids, deterministic: bool):
    c, init = self.config, nn.initializers.normal(0.02)
    width = c.embedding_size or c.hidden_size
    x = (nn.Embed(c.vocab_size, width, embedding_init=init, name="word")(input_ids)
         + nn.Embed(c.max_position_embeddings, width, embedding_init=init, name="position")(
             position_ids(attention_mask, c.padding_idx)))
    if c.type_vocab_size:
      x = x + nn.Embed(c.type_vocab_size, width, embedding_init=init, name="token_type")(token_type_ids)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="norm")(x)
    x = nn.Dropout(c.dropout_rate)(x, deterministic=deterministic).astype(self.dtype)
    if width != c.hidden_size:
      x = nn.Dense(c.hidden_size, dtype=self.dtype, kernel_init=init, name="project")(x)
    return x


class Layer(_Part):
  """One post-LayerNorm transformer layer (BERT, RoBERTa, DistilBERT, ELECTRA)."""

  @nn.compact
  def __call__(self, x, bias, deterministic: bool):
    c = self.config
    dense = lambda n, name: nn.Dense(n, dtype=self.dtype, kernel_init=nn.initializers.normal(0.02), name=name)
    norm = lambda name: nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=self.dtype, name=name)
    head_dim = c.hidden_size // c.num_heads
    split = lambda t: t.reshape(t.shape[:2] + (c.num_heads, head_dim))
    q, k, v = (split(dense(c.hidden_size, n)(x)) for n in ("query", "key", "value"))
    if deterministic or c.attention_dropout_rate == 0:  # JAX's fused attention (a cuDNN/flash kernel where there is one)
      attended = jax.nn.dot_product_attention(q, k, v, bias=bias).reshape(x.shape)
    else:  # dropout on the attention probabilities, as BERT trains: written out
      scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(head_dim).astype(self.dtype) + bias
      probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(self.dtype)
      probs = nn.Dropout(c.attention_dropout_rate)(probs, deterministic=deterministic)
      attended = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(x.shape)
    attended = nn.Dropout(c.dropout_rate)(dense(c.hidden_size, "attention_output")(attended), deterministic)
    x = norm("attention_norm")(x + attended)
    h = ACTIVATIONS[c.hidden_act](dense(c.intermediate_size, "intermediate")(x))
    h = nn.Dropout(c.dropout_rate)(dense(c.hidden_size, "output")(h), deterministic)
    return norm("output_norm")(x + h)


class Encoder(nn.Module):
  """Token ids and attention mask -> last hidden states [batch, length, hidden]."""
  config: EncoderConfig
  dtype: jnp.dtype = jnp.float32
  remat: bool = False  # recompute each layer's activations in the backward pass (saves memory)

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, deterministic: bool = True):
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    x = Embeddings(self.config, self.dtype, name="embeddings")(input_ids, attention_mask, token_type_ids,
                                                               deterministic)
    # Additive mask: padded keys get a large negative score, so they receive no attention.
    bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9).astype(self.dtype)
    layer_cls = nn.remat(Layer, static_argnums=(3,)) if self.remat else Layer
    for i in range(self.config.num_layers):
      x = layer_cls(self.config, self.dtype, name=f"layer_{i}")(x, bias, deterministic)
    return x


def init_params(rng, config: EncoderConfig) -> dict:
  ids = jnp.zeros((1, 8), jnp.int32)
  return Encoder(config).init(rng, ids, jnp.ones_like(ids))["params"]
