"""Export a checkpoint to transformers / PyTorch: the encoder as its own family's model, the heads and the task layout
as two files beside it (README: "Export to transformers / PyTorch" has the PyTorch code that predicts with them).

  python -m mtl_jax.export --checkpoint=runs/three_task --output=exported

writes to the output directory:
  config.json, model.safetensors   the encoder, for `transformers.AutoModel.from_pretrained`: the family's config
                                   fields and weight names (the inverse of loading it, `mtl_jax/encoders/`);
  tokenizer files                  the checkpoint's tokenizer, for `AutoTokenizer.from_pretrained`;
  mtl_heads.safetensors            per kind of head, `<kind>.weight` [outputs, hidden] and `<kind>.bias` [outputs]
                                   (torch.nn.Linear's layout);
  mtl_tasks.json                   the pooling, per kind what its head reads and how its outputs become predictions,
                                   and the tasks in order (name, kind, labels, offset and size in the head's outputs).

Nothing here imports PyTorch: tensors are written with `safetensors.numpy`.
"""

import json
import os

import numpy as np
from safetensors.numpy import save

from mtl_jax import cli, encoders
from mtl_jax.encoders import EncoderConfig, weights
from mtl_jax.errors import UserError
from mtl_jax.kinds import KINDS
from mtl_jax.model import Model
from mtl_jax.predict import Predictor

HEADS, TASKS = "mtl_heads.safetensors", "mtl_tasks.json"
READS = {False: "pooled", True: "word_starts"}  # Kind.reads_words -> what its head reads, as mtl_tasks.json says


def encoder_tensors(config: EncoderConfig, params: dict) -> dict[str, np.ndarray]:
  """The encoder's weights under its family's names, torch layout. A family whose base model has a pooler (BERT,
  RoBERTa) gets a zero one: mtl_jax neither loads nor trains it, and zeros make its `pooler_output` 0 rather than
  random."""
  module = encoders.FAMILIES[config.family]
  tensors = weights.from_tree(params, module.path_to_hf_name, module.hf_name_to_path)
  if module.POOLER:
    hidden = config.hidden_size
    tensors.update({f"{module.POOLER}.weight": np.zeros((hidden, hidden), np.float32),
                    f"{module.POOLER}.bias": np.zeros((hidden,), np.float32)})
  return tensors


def head_tensors(heads: dict) -> dict[str, np.ndarray]:
  """Each kind's grouped head {"kernel" [H, outputs], "bias"} as nn.Linear's `<kind>.weight` [outputs, H] and
  `<kind>.bias`."""
  f32 = lambda x: np.asarray(x, np.float32)
  return {**{f"{kind}.weight": np.ascontiguousarray(f32(head["kernel"]).T) for kind, head in heads.items()},
          **{f"{kind}.bias": f32(head["bias"]) for kind, head in heads.items()}}


def task_spec(model: Model, max_length: int) -> dict:
  """mtl_tasks.json: what turns the encoder's last hidden states into every task's predictions."""
  layout = model.layout
  return {"pooling": model.pooling, "max_length": max_length,
          "kinds": {k.name: {"reads": READS[k.reads_words], "activation": k.activation,
                             "outputs": layout.total(k.name)} for k in model.kinds},
          "tasks": [{"name": t.name, "kind": t.kind, "labels": list(t.labels), "offset": offset, "size": size,
                     "scheme": t.scheme, **({"threshold": t.threshold} if "threshold" in KINDS[t.kind].options else {})}
                    for t, offset, size in zip(layout.tasks, layout.offsets, layout.group_sizes)]}


def save_tokenizer(tokenizer, output: str) -> None:
  """The checkpoint's tokenizer files. Without a tokenizer_config.json, AutoTokenizer would take the family's
  tokenizer class, which may rebuild the tokenizer from its own defaults (DeBERTa-v2's puts [CLS] ... [SEP] around a
  text whatever tokenizer.json says); one naming the generic class makes it read tokenizer.json as mtl_jax does."""
  tokenizer.save_pretrained(output)
  config = os.path.join(output, "tokenizer_config.json")
  if os.path.isfile(os.path.join(output, "tokenizer.json")) and not os.path.isfile(config):
    with open(config, "w", encoding="utf-8") as f:
      json.dump({"tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=2)


def write_tensors(tensors: dict[str, np.ndarray], path: str) -> None:
  """A safetensors file PyTorch's loaders take (`format: pt`), readable as the umask allows like the other files
  (safetensors creates it private, 0600)."""
  with open(path, "wb") as f:  # open() honours the umask; safetensors' save_file would create the file 0600
    f.write(save(tensors, metadata={"format": "pt"}))


def check_output(output: str) -> None:
  """A UserError unless `output` is new or an empty directory (an export never mixes its files with others)."""
  if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
    raise UserError(f"{output}: exists and is not an empty directory; choose a new --output")


def export(checkpoint: str, output: str) -> None:
  """Writes the files above for the checkpoint `checkpoint` (a workdir, manager or step directory) to `output`,
  which must not exist or be empty."""
  check_output(output)
  predictor = Predictor.load(checkpoint)
  config = predictor.model.encoder.config
  params = predictor.params
  os.makedirs(output, exist_ok=True)
  with open(os.path.join(output, "config.json"), "w", encoding="utf-8") as f:
    json.dump(encoders.FAMILIES[config.family].config_to_hf(config), f, indent=2)
  write_tensors(encoder_tensors(config, params["encoder"]), os.path.join(output, "model.safetensors"))
  save_tokenizer(predictor.tokenizer, output)
  write_tensors(head_tensors(params["heads"]), os.path.join(output, HEADS))
  with open(os.path.join(output, TASKS), "w", encoding="utf-8") as f:
    json.dump(task_spec(predictor.model, max(predictor.length_buckets)), f, indent=2)


def main(argv) -> None:
  from absl import flags
  with cli.user_errors():
    if len(argv) > 1:
      raise UserError(f"unexpected arguments: {argv[1:]}")
    export(flags.FLAGS.checkpoint, flags.FLAGS.output)


if __name__ == "__main__":
  from absl import flags as absl_flags
  from absl import logging
  absl_flags.DEFINE_string("checkpoint", None, "Workdir, checkpoint manager directory or step directory.")
  absl_flags.DEFINE_string("output", None, "Directory to write (new, or empty).")
  absl_flags.mark_flags_as_required(["checkpoint", "output"])
  logging.set_verbosity(logging.WARNING)
  cli.run(main)
