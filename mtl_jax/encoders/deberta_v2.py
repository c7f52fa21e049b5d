"""DeBERTa-v2 and DeBERTa-v3: BERT's post-LayerNorm layers with disentangled attention (content-to-position and
position-to-content scores from relative-position embeddings shared by the layers, log-bucketed), embeddings
without absolute positions in v3, the padding's embeddings zeroed. The convolution some v2 checkpoints add to the
first layer (`conv_kernel_size`) is not implemented and is refused."""

import dataclasses

from mtl_jax.encoders import bert, weights
from mtl_jax.errors import UserError

LAYER_MODULES = {**bert.LAYER_MODULES, "attention.self.query_proj": "query", "attention.self.key_proj": "key",
                 "attention.self.value_proj": "value", "attention.self.pos_key_proj": "pos_key",
                 "attention.self.pos_query_proj": "pos_query"}
EMBEDDINGS = {**bert.EMBEDDINGS, "embed_proj": "project"}
OPTIONAL = {**bert.OPTIONAL, "type_vocab_size": ("type_vocab_size", 0), "layer_norm_eps": ("layer_norm_eps", 1e-7)}
ENCODER_LEVEL = {"encoder.rel_embeddings.weight": ("rel_embeddings",),  # what the layers share
                 "encoder.LayerNorm.weight": ("rel_norm", "scale"), "encoder.LayerNorm.bias": ("rel_norm", "bias")}
POOLER = None


def config_from_hf(hf: dict, where: str, family: str = "deberta-v2") -> weights.EncoderConfig:
  if hf.get("conv_kernel_size", 0):
    raise UserError(f"{where}: field 'conv_kernel_size': DeBERTa's convolution layer is not supported (expected 0, "
                    f"found {hf['conv_kernel_size']})")
  pos_att_type = hf.get("pos_att_type") or []
  if isinstance(pos_att_type, str):
    pos_att_type = [x.strip() for x in pos_att_type.lower().split("|")]
  config = weights.read_config(hf, where, family, bert.REQUIRED, OPTIONAL)
  width = hf.get("embedding_size") or config.hidden_size
  return dataclasses.replace(
      config, embedding_size=0 if width == config.hidden_size else width,
      absolute_positions=hf.get("position_biased_input", True), project_before_norm=True,
      relative_attention=hf.get("relative_attention", False), position_buckets=hf.get("position_buckets") or -1,
      max_relative_positions=hf.get("max_relative_positions", -1), pos_att_type=tuple(pos_att_type),
      share_att_key=bool(hf.get("share_att_key", False)),
      rel_norm="layer_norm" in str(hf.get("norm_rel_ebd", "none")).lower())


def config_to_hf(config: weights.EncoderConfig) -> dict:
  return weights.write_config(
      config, bert.REQUIRED, OPTIONAL, embedding_size=config.embedding_size or config.hidden_size,
      position_biased_input=config.absolute_positions, relative_attention=config.relative_attention,
      position_buckets=config.position_buckets, max_relative_positions=config.max_relative_positions,
      pos_att_type=list(config.pos_att_type), share_att_key=config.share_att_key,
      norm_rel_ebd="layer_norm" if config.rel_norm else "none", conv_kernel_size=0)


def hf_name_to_path(name: str) -> tuple[str, ...] | None:
  if (base := name.removeprefix("deberta.")) in ENCODER_LEVEL:
    return ENCODER_LEVEL[base]
  return weights.map_name(
      name, r"^(deberta|model)\.",
      r"^(pooler\.|lm_predictions\.|cls\.|classifier\.|mask_predictions\.|embeddings\.position_ids$)",
      bert.LAYERS, LAYER_MODULES, EMBEDDINGS)


def path_to_hf_name(path: tuple[str, ...]) -> str:
  at_encoder_level = {ours: theirs for theirs, ours in ENCODER_LEVEL.items()}
  return at_encoder_level.get(path) or weights.hf_name(path, bert.LAYERS, LAYER_MODULES, EMBEDDINGS)
