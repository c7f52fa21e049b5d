"""ModernBERT: pre-LayerNorm layers without biases (`norm_bias`, `attention_bias`, `mlp_bias`), query, key and value
in one matrix (`Wqkv`), a GeGLU MLP (`Wi` of twice the intermediate size), rotary positions instead of a position
table, every `global_attn_every_n_layers`-th layer global (`global_rope_theta`) and the others local
(`local_rope_theta`, keys at most `local_attention // 2` positions away), a final LayerNorm; no token types.
Configs as the hub has them (those fields) or as transformers 5 saves them (`layer_types`, `rope_parameters`) load
alike; the export writes the former, which both read. Batches run padded, as transformers' eager and sdpa
attention do."""

import dataclasses

from mtl_jax.encoders import bert, weights
from mtl_jax.errors import UserError

OPTIONAL = {"layer_norm_eps": ("norm_eps", 1e-5), "hidden_act": ("hidden_activation", "gelu"),
            "dropout_rate": ("mlp_dropout", 0.0), "attention_dropout_rate": ("attention_dropout", 0.0),
            "norm_bias": ("norm_bias", False), "attention_bias": ("attention_bias", False),
            "mlp_bias": ("mlp_bias", False), "local_window": ("local_attention", 128)}
LAYER_MODULES = {  # after `layers.N.`
    "attn_norm": "attention_norm", "attn.Wqkv": "qkv", "attn.Wo": "attention_output", "mlp_norm": "mlp_norm",
    "mlp.Wi": "intermediate", "mlp.Wo": "output"}
EMBEDDINGS = {"tok_embeddings": "word", "norm": "norm"}
LAYERS = "layers"
ENCODER_LEVEL = {"final_norm.weight": ("final_norm", "scale"), "final_norm.bias": ("final_norm", "bias")}
THETAS = {"full_attention": ("global_rope_theta", 160_000.0), "sliding_attention": ("local_rope_theta", 10_000.0)}
POOLER = None


def config_from_hf(hf: dict, where: str, family: str = "modernbert") -> weights.EncoderConfig:
  config = weights.read_config(hf, where, family, bert.REQUIRED, OPTIONAL, type_vocab_size=0,
                               absolute_positions=False, pre_norm=True, fused_qkv=True, glu=True)
  global_theta, local_theta = rope_thetas(hf, where)
  return dataclasses.replace(config, rope_theta=global_theta, local_rope_theta=local_theta,
                             global_every=global_every(hf, where, config.num_layers))


def rope_thetas(hf: dict, where: str) -> tuple[float, float]:
  """The rotary bases of the global and the local layers: `rope_parameters` (transformers 5), else
  `global_rope_theta` / `local_rope_theta` (the hub's configs; a null local one is the global one)."""
  if hf.get("rope_scaling"):
    raise UserError(f"{where}: field 'rope_scaling': scaled rotary positions are not supported (expected null)")
  thetas = []
  for kind, (key, default) in THETAS.items():
    rope = (hf.get("rope_parameters") or {}).get(kind) or {}
    if rope.get("rope_type", "default") != "default":
      raise UserError(f"{where}: field 'rope_parameters': {kind}: expected rope_type 'default', found "
                      f"{rope['rope_type']!r}")
    theta = rope.get("rope_theta", hf.get(key, default))
    theta = theta if theta is not None or not thetas else thetas[0]  # a null local base is the global one
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
      raise UserError(f"{where}: field {key!r}: expected a rotary base > 0, found {theta!r}")
    thetas.append(float(theta))
  return thetas[0], thetas[1]


def global_every(hf: dict, where: str, num_layers: int) -> int:
  """Every how many layers one attends globally (from the first): `global_attn_every_n_layers`, or what
  `layer_types` lists, which must follow that pattern."""
  types = hf.get("layer_types")
  if not types:
    every = hf.get("global_attn_every_n_layers", 3)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
      raise UserError(f"{where}: field 'global_attn_every_n_layers': expected an integer >= 1, found {every!r}")
    return every
  every = next((i for i, kind in enumerate(types) if i and kind == "full_attention"), num_layers)
  if types != layer_types(every, num_layers):
    raise UserError(f"{where}: field 'layer_types': expected every n-th layer 'full_attention' from the first and "
                    f"the others 'sliding_attention', found {types}")
  return every


def layer_types(every: int, num_layers: int) -> list[str]:
  return ["sliding_attention" if i % every else "full_attention" for i in range(num_layers)]


def config_to_hf(config: weights.EncoderConfig) -> dict:
  # no special token ids: the tokenizer's files carry them, and transformers' defaults (50281 to 50283) would lie
  # beyond a smaller vocabulary
  return weights.write_config(
      config, bert.REQUIRED, OPTIONAL, global_attn_every_n_layers=config.global_every,
      global_rope_theta=config.rope_theta, local_rope_theta=config.local_rope_theta,
      embedding_dropout=config.dropout_rate, pad_token_id=None, bos_token_id=None, eos_token_id=None,
      cls_token_id=None, sep_token_id=None)


def hf_name_to_path(name: str) -> tuple[str, ...] | None:
  if (base := name.removeprefix("model.")) in ENCODER_LEVEL:
    return ENCODER_LEVEL[base]
  return weights.map_name(name, r"^model\.", r"^(head\.|decoder\.|classifier\.)", LAYERS, LAYER_MODULES,
                          EMBEDDINGS)


def path_to_hf_name(path: tuple[str, ...]) -> str:
  at_encoder_level = {ours: theirs for theirs, ours in ENCODER_LEVEL.items()}
  return at_encoder_level.get(path) or weights.hf_name(path, LAYERS, LAYER_MODULES, EMBEDDINGS)
