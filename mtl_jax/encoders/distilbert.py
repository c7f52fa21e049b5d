"""DistilBERT: BERT's layers under other names, no token types (its sinusoidal position table, when
`sinusoidal_pos_embds` is set, is stored in the weights like a learned one and loads as such)."""

from mtl_jax.encoders import weights

REQUIRED = {"vocab_size": "vocab_size", "hidden_size": "dim", "num_layers": "n_layers", "num_heads": "n_heads",
            "intermediate_size": "hidden_dim", "max_position_embeddings": "max_position_embeddings"}
OPTIONAL = {"hidden_act": ("activation", "gelu"), "dropout_rate": ("dropout", 0.1),
            "attention_dropout_rate": ("attention_dropout", 0.1)}
LAYER_MODULES = {  # after `transformer.layer.N.`
    "attention.q_lin": "query", "attention.k_lin": "key", "attention.v_lin": "value",
    "attention.out_lin": "attention_output", "sa_layer_norm": "attention_norm", "ffn.lin1": "intermediate",
    "ffn.lin2": "output", "output_layer_norm": "output_norm",
}
EMBEDDINGS = {"word_embeddings": "word", "position_embeddings": "position", "LayerNorm": "norm"}
LAYERS = "transformer.layer"
POOLER = None


def config_from_hf(hf: dict, where: str, family: str = "distilbert") -> weights.EncoderConfig:
  return weights.read_config(hf, where, family, REQUIRED, OPTIONAL, type_vocab_size=0, layer_norm_eps=1e-12)


def config_to_hf(config: weights.EncoderConfig) -> dict:
  return weights.write_config(config, REQUIRED, OPTIONAL, sinusoidal_pos_embds=False)  # positions as a stored table


def hf_name_to_path(name: str) -> tuple[str, ...] | None:
  return weights.map_name(
      name, r"^(distilbert|model)\.",
      r"^(vocab_transform\.|vocab_layer_norm\.|vocab_projector\.|pre_classifier\.|classifier\.|"
      r"embeddings\.position_ids$)", LAYERS, LAYER_MODULES, EMBEDDINGS)


def path_to_hf_name(path: tuple[str, ...]) -> str:
  return weights.hf_name(path, LAYERS, LAYER_MODULES, EMBEDDINGS)
