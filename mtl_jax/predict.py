"""Prediction from a checkpoint directory alone.

  Predictor.load("runs/three_task").predict(["my parcel never arrived"])
  -> [{"sentiment": {"label": "negative", "probs": {"negative": 0.93, ...}}, "urgency": {...}, "topic": {...}}]

CLI:
  python -m mtl_jax.predict --checkpoint=DIR --input=in.jsonl --output=out.jsonl   # rows with a "text" field
  echo "my parcel never arrived" | python -m mtl_jax.predict --checkpoint=DIR      # one text per line, readable
"""

import json
import os
import sys

import jax
import numpy as np

from mtl_jax import checkpoint
from mtl_jax.encoder import Encoder, EncoderConfig
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import Encoded, eval_indices, make_batch, tokenize
from mtl_jax.model import Model
from mtl_jax.tasks import Layout


class Predictor:
  """Every task's predictions for raw texts, from one self-describing checkpoint."""

  def __init__(self, model: Model, params: dict, tokenizer, length_buckets: tuple[int, ...], step: int):
    self.model, self.params, self.tokenizer, self.step = model, params, tokenizer, step
    self.length_buckets = tuple(length_buckets)
    self._logits = jax.jit(lambda p, b: model.probabilities(model.logits(p, b)))

  @classmethod
  def load(cls, path: str) -> "Predictor":
    """From a workdir (its best checkpoint, else its latest), a manager directory, or one step's directory."""
    mngr, step = checkpoint.find(path)
    meta = checkpoint.restore_meta(mngr, step)
    tokenizer = checkpoint.load_tokenizer(mngr.restore(step, args=checkpoint.ocp.args.Composite(
        tokenizer=checkpoint.ocp.args.JsonRestore())).tokenizer)
    params = checkpoint.restore_arrays(mngr, step, {"params": None})["params"]
    model = Model(Encoder(EncoderConfig(**meta["encoder"])), Layout.from_dict(meta["tasks"]), meta["pooling"])
    return cls(model, params, tokenizer, meta["length_buckets"], step)

  @property
  def layout(self) -> Layout:
    return self.model.layout

  def probabilities(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """[N, sum(group_sizes)] class probabilities, each task's group summing to 1."""
    ids, _ = tokenize(list(texts), self.tokenizer, max(self.length_buckets))
    num_tasks = len(self.layout.tasks)
    data = Encoded(ids, np.zeros((len(ids), num_tasks), np.int32), np.ones((len(ids), num_tasks), np.float32), 0)
    probs = np.zeros((len(data), self.layout.total_classes), np.float32)
    for idx in eval_indices(data.lengths, batch_size):
      batch = make_batch(data, idx, batch_size, self.length_buckets, self.tokenizer.pad_token_id or 0)
      probs[idx] = np.asarray(self._logits(self.params, batch))[:len(idx)]
    return probs

  def predict(self, texts: list[str], batch_size: int = 64) -> list[dict]:
    """Per text: {task: {"label": name, "probs": {name: p}}}."""
    probs = self.probabilities(texts, batch_size)
    results = []
    for row in probs:
      result = {}
      for task, offset in zip(self.layout.tasks, self.layout.offsets):
        p = row[offset:offset + task.num_classes]
        result[task.name] = {"label": task.labels[int(np.argmax(p))],
                             "probs": {name: round(float(x), 6) for name, x in zip(task.labels, p)}}
      results.append(result)
    return results


def read_jsonl_texts(path: str) -> list[str]:
  """The "text" field of every row of a JSONL file (errors name the line)."""
  texts = []
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise UserError(f"{path}:{line_no}: invalid JSON at column {e.colno}: {e.msg}") from None
      if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise UserError(f"{path}:{line_no}: field 'text': expected a JSON object with a string 'text'")
      texts.append(row["text"])
  return texts


def format_readable(text: str, result: dict) -> str:
  parts = [f"{task}={r['label']} ({r['probs'][r['label']]:.2f})" for task, r in result.items()]
  return f"{text}\n  " + "  ".join(parts)


def main(argv) -> None:
  from absl import flags
  flag = flags.FLAGS
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {argv[1:]}")
  try:
    predictor = Predictor.load(flag.checkpoint)
    if flag.input:
      if not os.path.isfile(flag.input):
        raise UserError(f"{flag.input}: file not found")
      texts = read_jsonl_texts(flag.input)
      rows = [json.dumps({"text": text, **result}, ensure_ascii=False) + "\n"
              for text, result in zip(texts, predictor.predict(texts, flag.batch_size))]
      if flag.output:
        with open(flag.output, "w", encoding="utf-8") as f:
          f.writelines(rows)
      else:
        sys.stdout.writelines(rows)
    else:
      texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
      for text, result in zip(texts, predictor.predict(texts, flag.batch_size)):
        print(format_readable(text, result))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" banner
  from absl import app, flags as absl_flags, logging
  absl_flags.DEFINE_string("checkpoint", None, "Workdir, checkpoint manager directory or step directory.")
  absl_flags.DEFINE_string("input", None, "JSONL file with a 'text' field per row; default: lines from stdin.")
  absl_flags.DEFINE_string("output", None, "JSONL output, one object per input row keyed by task; default stdout.")
  absl_flags.DEFINE_integer("batch_size", 64, "Texts per forward pass.")
  absl_flags.mark_flag_as_required("checkpoint")
  logging.set_verbosity(logging.WARNING)
  app.run(main)
