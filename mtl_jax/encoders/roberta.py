"""RoBERTa, XLM-RoBERTa and CamemBERT: BERT's layers; positions count real tokens from `pad_token_id + 1`."""

import dataclasses

from mtl_jax.encoders import bert, weights

POOLER = bert.POOLER
path_to_hf_name = bert.path_to_hf_name


def config_from_hf(hf: dict, where: str, family: str = "roberta") -> weights.EncoderConfig:
  return dataclasses.replace(bert.config_from_hf(hf, where, family), padding_idx=hf.get("pad_token_id", 1),
                             type_vocab_size=hf.get("type_vocab_size", 1))


def config_to_hf(config: weights.EncoderConfig) -> dict:
  return {**bert.config_to_hf(config), "pad_token_id": config.padding_idx}


def hf_name_to_path(name: str) -> tuple[str, ...] | None:
  return weights.map_name(name, r"^(roberta|model)\.",
                          r"^(pooler\.|lm_head\.|classifier\.|embeddings\.(position_ids|token_type_ids)$)",
                          bert.LAYERS, bert.LAYER_MODULES, bert.EMBEDDINGS)
