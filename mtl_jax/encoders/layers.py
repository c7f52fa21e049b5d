"""What the encoder families share: the architecture record, the embeddings, the transformer layer (post-LayerNorm
as BERT's, or pre-LayerNorm with rotary positions and local attention as ModernBERT's) and the encoder that stacks
them. A family (a module beside this one) says how its `config.json` and weight names map onto these; the parameter
tree is named alike for all (`embeddings/word`, `layer_3/query`, ...), so sharding rules, heads and checkpoints do
not depend on the family."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def gelu(x):
  """Exact GELU as transformers computes it, x / 2 * (1 + erf(x / sqrt(2))). Flax's nn.gelu(approximate=False) is the
  same function written with erfc, whose XLA:CPU lowering takes twice as long (896 x 1536 floats on 2 cores: 1.49 ms
  against 0.74 ms; 1.75 ms against 1.22 ms with its gradient), though a training step's time moves within its noise."""
  return x * (0.5 * (1.0 + jax.lax.erf(x * 0.7071067811865476)))


ACTIVATIONS = {"gelu": gelu, "gelu_new": nn.gelu, "relu": nn.relu}


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
  absolute_positions: bool = True  # a position embedding added to the input (DeBERTa-v3: relative positions only)
  project_before_norm: bool = False  # DeBERTa: the embedding projection (no bias) comes before the LayerNorm
  # DeBERTa's disentangled attention: relative-position embeddings shared by the layers, scored against content
  relative_attention: bool = False
  position_buckets: int = -1  # log buckets of relative positions (-1: none)
  max_relative_positions: int = -1
  pos_att_type: tuple[str, ...] = ()  # "c2p" (content to position) and/or "p2c"
  share_att_key: bool = False  # positions projected with the layer's query/key matrices instead of their own
  rel_norm: bool = False  # a LayerNorm on the relative-position embeddings
  # ModernBERT: pre-LayerNorm layers (the first layer's attention reads the normed embeddings as they are) and a
  # final LayerNorm; query, key and value in one matrix; a gated MLP (act(x W1) * x W2 from one matrix of twice the
  # intermediate size); optional biases; rotary positions; every `global_every`-th layer (from the first) attends
  # globally, the others only to keys at most local_window // 2 positions away
  pre_norm: bool = False
  fused_qkv: bool = False
  glu: bool = False
  norm_bias: bool = True
  attention_bias: bool = True
  mlp_bias: bool = True
  rope_theta: float = 0.0  # the rotary positions' base in the global layers (0: no rotary positions)
  local_rope_theta: float = 0.0  # ... in the local layers
  global_every: int = 1
  local_window: int = 0

  @property
  def max_length(self) -> int:
    """The longest sequence the position embeddings cover."""
    return self.max_position_embeddings - (self.padding_idx + 1 if self.padding_idx >= 0 else 0)

  @property
  def rel_span(self) -> int:
    """Relative positions on each side: the buckets, or the positions covered."""
    if self.position_buckets > 0:
      return self.position_buckets
    return self.max_relative_positions if self.max_relative_positions > 0 else self.max_position_embeddings

  def to_dict(self) -> dict:
    """As checkpoint meta stores it (JSON: tuples become lists)."""
    return {**dataclasses.asdict(self), "pos_att_type": list(self.pos_att_type)}

  @classmethod
  def from_dict(cls, d: dict) -> "EncoderConfig":
    """From checkpoint meta (older checkpoints lack the newer fields: their defaults are BERT's)."""
    return cls(**{**d, "pos_att_type": tuple(d.get("pos_att_type", ()))})


def dropout(x, rate: float, rng):
  """Inverted dropout: zero each element with probability `rate` and scale the rest by 1 / (1 - rate).

  Each element draws 8 random bits, four from each 32-bit threefry draw along the last axis (Flax's Dropout spends a
  32-bit draw, a whole threefry block, on each element: the random bits cost most of the dropout's time), so the rate
  rounds to a multiple of 1/256 (0.1 -> 26/256 = 0.1016); the scale uses the rounded rate, so expectations stay
  exact. The leading axes are those of `x`, so the bits shard with it (the same mask on any mesh)."""
  if dropped_bytes(rate) == 0:
    return x
  keep, scale = dropout_mask(x.shape, rate, rng)
  return jnp.where(keep, x * scale, 0).astype(x.dtype)


def dropped_bytes(rate: float) -> int:
  """`dropout`'s rate in 256ths: a random byte below it drops the element."""
  return min(round(rate * 256), 255)


def dropout_mask(shape: tuple[int, ...], rate: float, rng) -> tuple[jax.Array, float]:
  """`dropout`'s keep mask (bool, `shape`) and the scale of what it keeps."""
  drop, width = dropped_bytes(rate), shape[-1]
  words = jax.random.bits(rng, shape[:-1] + (-(-width // 4),), jnp.uint32)
  draws = (words[..., None] >> jnp.arange(0, 32, 8, dtype=jnp.uint32)) & 255  # [..., words, 4]: one byte each
  return draws.reshape(shape[:-1] + (-1,))[..., :width] >= drop, 256 / (256 - drop)


def dense_dot(x, kernel, dimension_numbers, precision=None, preferred_element_type=None):
  """`nn.Dense`'s `dot_general`: x [..., in] @ kernel [in, out], with its gradients written as the two products they
  are, dx = g kernel^T and dkernel = x^T g, contracting the rows of x and g where they lie. Autodiff's transpose of
  the product contracts a transposed g instead, and XLA:CPU wrote that transposed copy of each dense layer's output
  gradient (recomputing the fusion that makes g) before the kernel's gradient; written out, no copy is made."""
  assert dimension_numbers == (((x.ndim - 1,), (0,)), ((), ())) and preferred_element_type is None
  return _dense_product(x, kernel, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dense_product(x, kernel, precision):
  return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=precision)


def _dense_product_fwd(x, kernel, precision):
  return _dense_product(x, kernel, precision), (x, kernel)


def _dense_product_bwd(precision, res, g):
  x, kernel = res
  rows = lambda a: a.reshape(-1, a.shape[-1])
  dx = jax.lax.dot_general(g, kernel, (((g.ndim - 1,), (1,)), ((), ())), precision=precision)
  dkernel = jax.lax.dot_general(rows(x), rows(g), (((0,), (0,)), ((), ())), precision=precision)
  return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


_dense_product.defvjp(_dense_product_fwd, _dense_product_bwd)


class Dropout(nn.Module):
  """`dropout` with the module's "dropout" rng stream; the identity when deterministic."""
  rate: float

  def __call__(self, x, deterministic: bool):
    return x if deterministic or self.rate == 0 else dropout(x, self.rate, self.make_rng("dropout"))


class _Part(nn.Module):
  """A part of the encoder: the architecture and the compute dtype."""
  config: EncoderConfig
  dtype: jnp.dtype = jnp.float32


def text_positions(attention_mask):
  """[batch, length] int32: each token's position within its text (a run of one nonzero id in the mask: 0, 1, 2, ...
  from the run's first token); 0 for padding."""
  mask = jnp.asarray(attention_mask).astype(jnp.int32)
  index = jnp.arange(mask.shape[1], dtype=jnp.int32)[None, :]
  starts = (mask > 0) & (mask != jnp.pad(mask[:, :-1], ((0, 0), (1, 0))))  # a text's first token
  return jnp.where(mask > 0, index - jax.lax.cummax(jnp.where(starts, index, 0), axis=1), 0)


def position_ids(attention_mask, padding_idx: int):
  """Each token's position within its text (`text_positions`); RoBERTa's scheme when padding_idx >= 0: real tokens
  count from padding_idx + 1 and padding sits at padding_idx (transformers derives the same from the ids; the mask
  gives it for any pad id)."""
  positions = text_positions(attention_mask)
  if padding_idx < 0:
    return positions
  return jnp.where(jnp.asarray(attention_mask) > 0, positions + padding_idx + 1, padding_idx)


def attention_bias(attention_mask, dtype, block: int = 0):
  """[batch, 1, length, length] additive attention scores: 0 where query and key hold the same id in the mask (the
  same text, or both padding), else a large negative score. Texts never see each other nor padding, and no query is
  masked out entirely (padding attends to padding), so nothing turns to NaN. With `block`, within blocks of that
  length only: [batch, 1, length / block, block, block]."""
  mask = jnp.asarray(attention_mask).astype(jnp.int32)
  if block:
    mask = mask.reshape(mask.shape[0], -1, block)
  return jnp.where(mask[:, None, ..., :, None] == mask[:, None, ..., None, :], 0.0, -1e9).astype(dtype)


class Embeddings(_Part):
  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids, deterministic: bool):
    c, init = self.config, nn.initializers.normal(0.02)
    width = c.embedding_size or c.hidden_size
    x = nn.Embed(c.vocab_size, width, embedding_init=init, name="word")(input_ids)
    if c.absolute_positions:
      x = x + nn.Embed(c.max_position_embeddings, width, embedding_init=init, name="position")(
          position_ids(attention_mask, c.padding_idx))
    if c.type_vocab_size:
      x = x + nn.Embed(c.type_vocab_size, width, embedding_init=init, name="token_type")(token_type_ids)
    project = lambda x, bias: nn.Dense(c.hidden_size, use_bias=bias, dtype=self.dtype, kernel_init=init,
                                       name="project", dot_general=dense_dot)(x)
    if width != c.hidden_size and c.project_before_norm:
      x = project(x, False)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, use_bias=c.norm_bias, name="norm")(x)
    if c.project_before_norm:  # DeBERTa zeroes the padding's embeddings
      x = x * (attention_mask[..., None] > 0)
    x = Dropout(c.dropout_rate)(x, deterministic=deterministic).astype(self.dtype)
    if width != c.hidden_size and not c.project_before_norm:
      x = project(x, True)
    return x


def relative_positions(length: int, buckets: int, max_position: int) -> np.ndarray:
  """[length, length] query position minus key position, log-bucketed beyond buckets / 2 when `buckets` > 0
  (DeBERTa-v2's `make_log_bucket_position`, in float32 as it computes)."""
  rel = np.arange(length)[:, None] - np.arange(length)[None, :]
  if buckets <= 0 or max_position <= 0:
    return rel
  mid = buckets // 2
  abs_pos = np.where((rel < mid) & (rel > -mid), mid - 1, np.abs(rel)).astype(np.float32)
  log_pos = np.ceil(np.log(abs_pos / np.float32(mid)) / np.log(np.float32((max_position - 1) / mid))
                    * np.float32(mid - 1)) + mid
  return np.where(abs_pos <= mid, rel, log_pos * np.sign(rel)).astype(np.int64)


def rotary(length: int, theta: float, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
  """Rotary positions' [length, head_dim] cosines and sines, in float32 as transformers computes them (the
  frequencies theta^(-2i / head_dim) repeated over the two halves of a head)."""
  frequencies = 1 / np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))
  angles = np.arange(length, dtype=np.float32)[:, None] * frequencies[None, :]
  angles = np.concatenate([angles, angles], axis=-1)
  return np.cos(angles), np.sin(angles)


def rotate(x, cos, sin):
  """Queries or keys [batch, length, heads, head_dim] rotated by their positions (cosines and sines [batch, length,
  head_dim]), in float32: each half of a head turned against the other (transformers' `rotate_half`)."""
  x32, half = x.astype(jnp.float32), x.shape[-1] // 2
  turned = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
  return (x32 * cos[:, :, None] + turned * sin[:, :, None]).astype(x.dtype)


def local_window_bias(length: int, window: int) -> np.ndarray:
  """[length, length]: 0 where the key is at most window // 2 positions from the query, else a large negative score
  (ModernBERT's local layers)."""
  distance = np.abs(np.arange(length)[:, None] - np.arange(length)[None, :])
  return np.where(distance <= window // 2, 0.0, -1e9).astype(np.float32)


class Layer(_Part):
  """One transformer layer: post-LayerNorm (BERT and most families) or pre-LayerNorm (`pre_norm`: ModernBERT). With
  `rel` (DeBERTa's relative-position embeddings and the [length, length] relative positions) the attention adds the
  disentangled content/position scores; with `rope` (cosines and sines of each token's position, [batch, length,
  head_dim]) queries and keys are rotated. `bias` holds the additive scores of each attention block length
  (`Encoder`), `block` picks one."""
  first: bool = False  # the encoder's first layer: with pre_norm, its attention reads the normed embeddings as they are

  @nn.compact
  def __call__(self, x, bias, deterministic: bool, rel=None, rope=None, block=None):
    c = self.config
    norm = lambda name: nn.LayerNorm(epsilon=c.layer_norm_eps, use_bias=c.norm_bias, dtype=self.dtype, name=name)
    if not c.pre_norm:
      x = norm("attention_norm")(x + self.attention(x, bias, deterministic, rel, rope, block))
      return norm("output_norm")(x + self.feed_forward(x, deterministic))
    x = x + self.attention(x if self.first else norm("attention_norm")(x), bias, deterministic, rel, rope, block)
    return x + self.feed_forward(norm("mlp_norm")(x), deterministic)

  def dense(self, n: int, name: str, bias: bool = True):
    return nn.Dense(n, use_bias=bias, dtype=self.dtype, kernel_init=nn.initializers.normal(0.02), name=name,
                    dot_general=dense_dot)

  def attention(self, x, bias, deterministic: bool, rel, rope, block):
    """Self-attention, through the output projection and its dropout: over whole rows (`bias` holds one length's
    scores), or within the blocks `block` picks (`blocked_attention`)."""
    c = self.config
    dense = lambda n, name: self.dense(n, name, c.attention_bias)
    head_dim = c.hidden_size // c.num_heads
    split = lambda t: t.reshape(t.shape[:-1] + (c.num_heads, head_dim))
    if c.fused_qkv:  # [..., 3 x hidden]: all heads' queries, then their keys, then their values
      qkv = dense(3 * c.hidden_size, "qkv")(x).reshape(x.shape[:-1] + (3, c.num_heads, head_dim))
      q, k, v = (qkv[..., i, :, :] for i in range(3))
      query = key = None
    else:
      query, key = dense(c.hidden_size, "query"), dense(c.hidden_size, "key")
      q, k, v = split(query(x)), split(key(x)), split(dense(c.hidden_size, "value")(x))
    if rope is not None:
      q, k = rotate(q, *rope), rotate(k, *rope)
    # DeBERTa divides the scores by the root of head_dim times the number of score terms
    scaled_dim = head_dim * (1 + len(c.pos_att_type)) if rel is not None else head_dim
    rate = 0.0 if deterministic else c.attention_dropout_rate
    if len(bias) > 1:  # attention blocks (training): the length `block` picks
      rng = self.make_rng("dropout") if rate else None
      attended = blocked_attention(q, k, v, bias, block, float(np.sqrt(head_dim)), rate, rng)
      return Dropout(c.dropout_rate)(dense(c.hidden_size, "attention_output")(attended.reshape(x.shape)),
                                     deterministic)
    bias = bias[0]
    if rel is not None:
      bias = bias + self.disentangled(q, k, rel, split, query, key, dense, np.sqrt(scaled_dim))
    if not rate:  # JAX's fused attention (cuDNN/flash where there is one)
      attended = jax.nn.dot_product_attention(q, k, v, bias=bias, scale=None if rel is None else
                                              float(1 / np.sqrt(scaled_dim)))
    else:  # dropout on the attention probabilities, as BERT trains: written out
      scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(scaled_dim).astype(self.dtype) + bias
      probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(self.dtype)
      probs = Dropout(c.attention_dropout_rate)(probs, deterministic=deterministic)
      attended = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
    attended = attended.reshape(x.shape)
    return Dropout(c.dropout_rate)(dense(c.hidden_size, "attention_output")(attended), deterministic)

  def feed_forward(self, x, deterministic: bool):
    """The MLP, through its dropout; with `glu`, the activation of the first half times the second (GeGLU)."""
    c, act = self.config, ACTIVATIONS[self.config.hidden_act]
    h = self.dense(c.intermediate_size * (2 if c.glu else 1), "intermediate", c.mlp_bias)(x)
    h = act(h[..., :c.intermediate_size]) * h[..., c.intermediate_size:] if c.glu else act(h)
    return Dropout(c.dropout_rate)(self.dense(c.hidden_size, "output", c.mlp_bias)(h), deterministic)

  def disentangled(self, q, k, rel, split, query, key, dense, root):
    """DeBERTa's content-to-position and position-to-content scores [batch, heads, query, key], already scaled."""
    c = self.config
    embeddings, positions = rel
    span = embeddings.shape[0] // 2
    score = 0.0
    if "c2p" in c.pos_att_type:
      pos_key = split(key(embeddings) if c.share_att_key else dense(c.hidden_size, "pos_key")(embeddings))
      c2p = jnp.einsum("bqhd,rhd->bhqr", q, pos_key)
      index = jnp.clip(positions + span, 0, 2 * span - 1)
      score = score + jnp.take_along_axis(c2p, jnp.broadcast_to(index, c2p.shape[:2] + index.shape), axis=-1)
    if "p2c" in c.pos_att_type:
      pos_query = split(query(embeddings) if c.share_att_key else dense(c.hidden_size, "pos_query")(embeddings))
      p2c = jnp.einsum("bkhd,rhd->bhkr", k, pos_query)
      index = jnp.clip(-positions + span, 0, 2 * span - 1)
      score = score + jnp.swapaxes(
          jnp.take_along_axis(p2c, jnp.broadcast_to(index, p2c.shape[:2] + index.shape), axis=-1), -1, -2)
    return score / np.float32(root).astype(q.dtype)


def _blocks(t, size: int):
  """[batch, length, heads, head_dim] -> [batch, length / size, size, heads, head_dim]."""
  return t.reshape(t.shape[0], -1, size, *t.shape[2:])


def _block_probs(q, k, bias, root, rate: float, rng):
  """Attention probabilities within blocks ([batch, heads, blocks, query, key], from `_blocks` of q and k and the
  blocks' additive `bias` [batch, 1, blocks, l, l]) and, with dropout, the keep mask and its scale."""
  scores = jnp.einsum("bnqhd,bnkhd->bhnqk", q, k) / np.asarray(root, q.dtype) + bias
  probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(q.dtype)
  keep, scale = dropout_mask(probs.shape, rate, rng) if rate else (None, 1.0)
  return probs, keep, scale


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def blocked_attention(q, k, v, bias, block, root: float, rate: float, rng=None):
  """Attention within blocks whose length `block` (traced) picks: `bias` holds each block length's additive scores
  ([batch, 1, length / l, l, l]); q, k, v [batch, length, heads, head_dim]; dropout `rate` on the probabilities.

  Its own backward pass: `lax.switch`'s autodiff would make every branch return every other branch's saved
  activations (as zeros) and cost more than the shorter blocks save; here each branch saves its probabilities (and
  keep mask) into one buffer of the longest block's size, and the backward pass switches on `block` again."""
  return _blocked_forward(q, k, v, bias, block, root, rate, rng)[0]


def _blocked_forward(q, k, v, bias, block, root, rate, rng):
  total = q.shape[1] * q.shape[1]  # one row's probabilities per head at the longest block, its whole length

  def branch(b):
    def run(q, k, v, rng):
      probs, keep, scale = _block_probs(_blocks(q, b.shape[-1]), _blocks(k, b.shape[-1]), b, root, rate, rng)
      dropped = probs if keep is None else jnp.where(keep, probs * scale, 0).astype(probs.dtype)
      out = jnp.einsum("bhnqk,bnkhd->bnqhd", dropped, _blocks(v, b.shape[-1])).reshape(q.shape)
      flat = lambda a: jnp.pad(a.reshape(*a.shape[:2], -1), ((0, 0), (0, 0), (0, total - a[0, 0].size)))
      return out, flat(probs), None if keep is None else flat(keep)
    return run
  out, probs, keep = jax.lax.switch(block, [branch(b) for b in bias], q, k, v, rng)
  return out, (q, k, v, probs, keep, block, bias)


def _blocked_backward(root, rate, saved, grad):
  q, k, v, probs, keep, block, bias = saved
  sizes = [b.shape[-1] for b in bias]
  scale = 256 / (256 - dropped_bytes(rate)) if keep is not None else 1.0

  def branch(size):
    def run(q, k, v, probs, keep, grad):
      qb, kb, vb, gb = (_blocks(t, size) for t in (q, k, v, grad))
      shape = (*probs.shape[:2], q.shape[1] // size, size, size)
      p = probs[..., :q.shape[1] * size].reshape(shape)
      kept = None if keep is None else keep[..., :q.shape[1] * size].reshape(shape)
      dropped = p if kept is None else jnp.where(kept, p * scale, 0).astype(p.dtype)
      dv = jnp.einsum("bhnqk,bnqhd->bnkhd", dropped, gb)
      dp = jnp.einsum("bnqhd,bnkhd->bhnqk", gb, vb)
      dp = dp if kept is None else jnp.where(kept, dp * scale, 0).astype(dp.dtype)
      p32, dp32 = p.astype(jnp.float32), dp.astype(jnp.float32)
      ds = (p32 * (dp32 - jnp.sum(p32 * dp32, axis=-1, keepdims=True))).astype(q.dtype) / np.asarray(root, q.dtype)
      dq = jnp.einsum("bhnqk,bnkhd->bnqhd", ds, kb)
      dk = jnp.einsum("bhnqk,bnqhd->bnkhd", ds, qb)
      return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)
    return run
  dq, dk, dv = jax.lax.switch(block, [branch(n) for n in sizes], q, k, v, probs, keep, grad)
  return dq, dk, dv, None, None, None


blocked_attention.defvjp(_blocked_forward, _blocked_backward)


def block_index(attention_mask, blocks: tuple[int, ...]):
  """The index in `blocks` (ascending lengths that divide the rows') of the shortest whose blocks hold every text of
  the batch whole (no text runs across a multiple of it), or len(blocks): only whole rows do."""
  mask = jnp.asarray(attention_mask)

  def holds(size):
    edges = mask.reshape(mask.shape[0], -1, size)
    return ~jnp.any((edges[:, 1:, 0] == edges[:, :-1, -1]) & (edges[:, 1:, 0] > 0))
  return jnp.argmax(jnp.stack([holds(size) for size in blocks] + [jnp.array(True)]))


class Encoder(nn.Module):
  """Token ids and attention mask -> last hidden states [batch, length, hidden].

  The mask [batch, length] holds 0 for padding and s >= 1 for a token of the row's s-th text: 0/1 is one text per row;
  a packed row holds several texts, each one run of its id (1, 2, 3, ... along the row, padding only after the
  last). A token attends only to its own text, and positions (absolute or rotary) restart at each text, so a text's
  hidden states are those it has alone in a row.

  Attention blocks (training, `blocks`): when no text of the batch runs across a multiple of a shorter length l
  (packed rows of l placed side by side, `input_pipeline.fold_rows`), attention runs within blocks of the shortest
  such l, as if the rows were [batch x length / l, l]: the same hidden states for the texts, at a fraction of
  attention's cost, from one compiled step (`blocked_attention` switches on the block length inside it). Not
  DeBERTa's disentangled attention, which always spans whole rows."""
  config: EncoderConfig
  dtype: jnp.dtype = jnp.float32
  remat: bool = False  # recompute each layer's activations in the backward pass (saves memory)
  blocks: tuple[int, ...] = ()  # training: attention block lengths shorter than the rows (each dividing them)

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, deterministic: bool = True):
    c, length = self.config, input_ids.shape[1]
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    x = Embeddings(c, self.dtype, name="embeddings")(input_ids, attention_mask, token_type_ids, deterministic)
    blocks = tuple(n for n in self.blocks if n < length and length % n == 0)
    if deterministic or c.relative_attention:  # DeBERTa: its relative positions are scored over whole rows
      blocks = ()
    sizes = (*blocks, length)  # attention block lengths; `block` picks one
    block = block_index(attention_mask, blocks) if blocks else None
    # Additive mask: keys of another text or padding get a large negative score, so they receive no attention.
    bias = {False: tuple(attention_bias(attention_mask, self.dtype, n if blocks else 0) for n in sizes)}
    rel = self.relative(length, deterministic) if c.relative_attention else None
    # ModernBERT: global layers (every global_every-th from the first) and local ones, each with its rotary base (its
    # tables gathered at each token's position within its text) and the local ones with their window
    head_dim, positions = c.hidden_size // c.num_heads, text_positions(attention_mask)
    rope = {local: tuple(jnp.asarray(table)[positions] for table in rotary(length, theta, head_dim))
            if c.rope_theta else None for local, theta in ((False, c.rope_theta), (True, c.local_rope_theta))}
    if c.global_every > 1:
      bias[True] = tuple(b + jnp.asarray(local_window_bias(n, c.local_window), self.dtype)
                         for b, n in zip(bias[False], sizes))
    layer_cls = nn.remat(Layer, static_argnums=(3,)) if self.remat else Layer
    for i in range(c.num_layers):
      local = i % c.global_every != 0
      x = layer_cls(c, self.dtype, first=i == 0, name=f"layer_{i}")(x, bias[local], deterministic, rel, rope[local],
                                                                     block)
    if c.pre_norm:
      x = nn.LayerNorm(epsilon=c.layer_norm_eps, use_bias=c.norm_bias, dtype=self.dtype, name="final_norm")(x)
    return x

  def relative(self, length: int, deterministic: bool):
    """DeBERTa: the relative-position embeddings every layer shares, and the relative positions of this length."""
    c = self.config
    table = self.param("rel_embeddings", nn.initializers.normal(0.02), (2 * c.rel_span, c.hidden_size))
    if c.rel_norm:
      table = nn.LayerNorm(epsilon=c.layer_norm_eps, name="rel_norm")(table)
    table = Dropout(c.dropout_rate)(table, deterministic=deterministic).astype(self.dtype)
    max_position = c.max_relative_positions if c.max_relative_positions > 0 else c.max_position_embeddings
    return table, jnp.asarray(relative_positions(length, c.position_buckets, max_position))


def init_params(rng, config: EncoderConfig) -> dict:
  ids = jnp.zeros((1, 8), jnp.int32)
  return Encoder(config).init(rng, ids, jnp.ones_like(ids))["params"]
