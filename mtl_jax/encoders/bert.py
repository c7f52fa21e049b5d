"""BERT, and what is saved as BERT (MiniLM, the packaged default): the reference family."""

from mtl_jax.encoders import weights

REQUIRED = {"vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
            "num_heads": "num_attention_heads", "intermediate_size": "intermediate_size",
            "max_position_embeddings": "max_position_embeddings"}
OPTIONAL = {"type_vocab_size": ("type_vocab_size", 2), "layer_norm_eps": ("layer_norm_eps", 1e-12),
            "hidden_act": ("hidden_act", "gelu"), "dropout_rate": ("hidden_dropout_prob", 0.1),
            "attention_dropout_rate": ("attention_probs_dropout_prob", 0.1)}
LAYER_MODULES = {  # after `encoder.layer.N.`
    "attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
    "attention.output.dense": "attention_output", "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "intermediate", "output.dense": "output", "output.LayerNorm": "output_norm",
}
EMBEDDINGS = {"word_embeddings": "word", "position_embeddings": "position", "token_type_embeddings": "token_type",
              "LayerNorm": "norm"}
LAYERS = "encoder.layer"
POOLER = "pooler.dense"  # the base model's pooler, which mtl_jax neither loads nor trains (None: the family has none)


def config_from_hf(hf: dict, where: str, family: str = "bert") -> weights.EncoderConfig:
  return weights.read_config(hf, where, family, REQUIRED, OPTIONAL)


def config_to_hf(config: weights.EncoderConfig) -> dict:
  return weights.write_config(config, REQUIRED, OPTIONAL)


def hf_name_to_path(name: str) -> tuple[str, ...] | None:
  return weights.map_name(name, r"^(bert|model)\.", r"^(pooler\.|cls\.|embeddings\.position_ids$)", LAYERS,
                          LAYER_MODULES, EMBEDDINGS)


def path_to_hf_name(path: tuple[str, ...]) -> str:
  return weights.hf_name(path, LAYERS, LAYER_MODULES, EMBEDDINGS)
