"""Encoder families, chosen by `config.json`'s `model_type`: each module maps its family's config and weight names
onto the shared layers (`layers.py`) and back (`config_to_hf`, `path_to_hf_name`, `POOLER`: the export to
transformers); anything else is refused by name, never loaded as BERT."""

from types import ModuleType

from mtl_jax.encoders import bert, deberta_v2, distilbert, electra, modernbert, roberta
from mtl_jax.encoders.layers import Encoder, EncoderConfig, init_params
from mtl_jax.errors import UserError

FAMILIES: dict[str, ModuleType] = {"bert": bert, "roberta": roberta, "xlm-roberta": roberta, "camembert": roberta,
                                   "distilbert": distilbert, "electra": electra, "deberta-v2": deberta_v2,
                                   "modernbert": modernbert}

__all__ = ["FAMILIES", "Encoder", "EncoderConfig", "family", "from_hf", "init_params"]


def family(hf: dict, where: str) -> ModuleType:
  """The family module of a config.json dict, or a UserError naming the model_type found and those supported."""
  model_type = hf.get("model_type")
  if model_type not in FAMILIES:
    found = f"{model_type!r}" if model_type is not None else "no model_type"
    raise UserError(f"{where}: field 'model_type': found {found}; supported encoder families: "
                    f"{', '.join(sorted(FAMILIES))}")
  return FAMILIES[model_type]


def from_hf(hf: dict, where: str) -> tuple[ModuleType, EncoderConfig]:
  """The family of a config.json dict and the EncoderConfig it describes."""
  module = family(hf, where)
  return module, module.config_from_hf(hf, where, hf["model_type"])
