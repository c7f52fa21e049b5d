"""From a family's `config.json` and safetensors names to our `EncoderConfig` and parameter tree, and back (the
export to transformers): each direction reads the same tables of the family module."""

import re

import numpy as np
from flax import traverse_util

from mtl_jax.encoders.layers import ACTIVATIONS, EncoderConfig
from mtl_jax.errors import UserError

UNKNOWN = "?"


def read_config(hf: dict, where: str, family: str, required: dict[str, str],
                optional: dict[str, tuple[str, object]], **fixed) -> EncoderConfig:
  """An EncoderConfig from `hf` (config.json): `required` and `optional` map our field to the family's key (and its
  default); `fixed` are what the family always has."""
  if hf.get("position_embedding_type", "absolute") != "absolute":
    raise UserError(f"{where}: field 'position_embedding_type': expected 'absolute', found "
                    f"{hf['position_embedding_type']!r}")
  try:
    values = {ours: hf[key] for ours, key in required.items()}
  except KeyError as e:
    raise UserError(f"{where}: missing field {e.args[0]!r} (expected a {family} config)") from None
  values.update({ours: hf.get(key, default) for ours, (key, default) in optional.items()})
  if values["hidden_act"] not in ACTIVATIONS:
    key = optional["hidden_act"][0]
    raise UserError(f"{where}: field {key!r}: expected one of {sorted(ACTIVATIONS)}, found {values['hidden_act']!r}")
  return EncoderConfig(family=family, **values, **fixed)


def write_config(config: EncoderConfig, required: dict[str, str], optional: dict[str, tuple[str, object]],
                 **extra) -> dict:
  """The inverse of `read_config`: the family's config.json fields of `config` (`extra`: what else it writes)."""
  return {"model_type": config.family, **{key: getattr(config, ours) for ours, key in required.items()},
          **{key: getattr(config, ours) for ours, (key, _) in optional.items()}, **extra}


def map_name(name: str, prefix: str, ignored: str, layers: str, layer_modules: dict[str, str],
             embeddings: dict[str, str], other: dict[str, tuple[str, ...]] | None = None) -> tuple[str, ...] | None:
  """A safetensors name -> our parameter path, e.g. `encoder.layer.3.attention.self.query.weight` -> ('layer_3',
  'query', 'kernel'); None for tensors an encoder does not use (`ignored`); (UNKNOWN, name) for anything else.
  `prefix` is the base model's name in task checkpoints (`bert.`), `layers` the layers' (`encoder.layer`: then
  `encoder.layer.N.<module>`), `layer_modules` / `embeddings` / `other` map module names onto ours."""
  name = re.sub(prefix, "", name)
  if re.match(ignored, name):
    return None
  module, _, leaf = name.rpartition(".")
  if m := re.fullmatch(rf"{re.escape(layers)}\.(\d+)\.(.+)", module):
    path = (f"layer_{m.group(1)}", layer_modules.get(m.group(2)))
  elif m := re.fullmatch(r"embeddings\.(\w+)", module):
    path = ("embeddings", embeddings.get(m.group(1)))
  else:
    path = (other or {}).get(module, (module, None))
  if path[1] is None:
    return (UNKNOWN, name)
  if path[1] in ("word", "position", "token_type"):
    return path + ("embedding",)
  if path[1].endswith("norm"):
    return path + ({"weight": "scale", "gamma": "scale", "beta": "bias"}.get(leaf, leaf),)
  return path + ({"weight": "kernel"}.get(leaf, leaf),)


def hf_name(path: tuple[str, ...], layers: str, layer_modules: dict[str, str], embeddings: dict[str, str],
            other: dict[str, tuple[str, ...]] | None = None) -> str:
  """The inverse of `map_name` (same arguments): our parameter path -> the base model's safetensors name. Where a
  table maps several names onto one of ours, the last wins: a family lists its own names after those it inherits
  (DeBERTa's `query_proj` after BERT's `query`)."""
  *module, leaf = path
  leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(leaf, leaf)
  inverse = lambda table: {ours: theirs for theirs, ours in table.items()}
  if found := inverse(other or {}).get(tuple(module)):
    return f"{found}.{leaf}"
  group, name = module
  if group == "embeddings":
    return f"embeddings.{inverse(embeddings)[name]}.{leaf}"
  return f"{layers}.{group.removeprefix('layer_')}.{inverse(layer_modules)[name]}.{leaf}"


def to_tree(tensors: dict[str, np.ndarray], name_to_path, family: str, where: str) -> dict:
  """A flat state dict onto our nested parameter tree (torch Linear weights transposed to Flax kernels)."""
  flat, unknown = {}, []
  for name, value in tensors.items():
    path = name_to_path(name)
    if path is None:
      continue
    if path[0] == UNKNOWN:
      unknown.append(name)
      continue
    flat[path] = np.asarray(value, np.float32).T if path[-1] == "kernel" else np.asarray(value, np.float32)
  if unknown:
    raise UserError(f"{where}: unexpected tensors for a {family} encoder: {', '.join(sorted(unknown)[:5])}")
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


def from_tree(params: dict, path_to_name, name_to_path) -> dict[str, np.ndarray]:
  """The inverse of `to_tree`: our parameter tree -> a flat float32 state dict in the family's names, Flax kernels
  transposed back to torch's Linear layout [out, in]. Every name must map back to its path (`name_to_path`), so the
  two directions cannot drift apart."""
  tensors = {}
  for path, value in traverse_util.flatten_dict(params).items():
    name = path_to_name(path)
    if name_to_path(name) != path:
      raise ValueError(f"{'/'.join(path)} is written as {name!r}, which reads back as {name_to_path(name)}")
    value = np.asarray(value, np.float32)
    tensors[name] = np.ascontiguousarray(value.T if path[-1] == "kernel" else value)
  return tensors
