"""ELECTRA (the discriminator): BERT's layers on embeddings of their own width, projected up to the hidden size."""

import dataclasses

from mtl_jax.encoders import bert, weights

OTHER = {"embeddings_project": ("embeddings", "project")}
POOLER = None


def config_from_hf(hf: dict, where: str, family: str = "electra") -> weights.EncoderConfig:
  config = bert.config_from_hf(hf, where, family)
  width = hf.get("embedding_size", config.hidden_size)
  return dataclasses.replace(config, embedding_size=0 if width == config.hidden_size else width)


def config_to_hf(config: weights.EncoderConfig) -> dict:
  return {**bert.config_to_hf(config), "embedding_size": config.embedding_size or config.hidden_size}


def hf_name_to_path(name: str) -> tuple[str, ...] | None:
  return weights.map_name(
      name, r"^(electra|model)\.",
      r"^(discriminator_predictions\.|generator_|classifier\.|embeddings\.(position_ids|token_type_ids)$)",
      bert.LAYERS, bert.LAYER_MODULES, bert.EMBEDDINGS, OTHER)


def path_to_hf_name(path: tuple[str, ...]) -> str:
  return weights.hf_name(path, bert.LAYERS, bert.LAYER_MODULES, bert.EMBEDDINGS, OTHER)
