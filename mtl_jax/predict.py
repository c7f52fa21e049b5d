"""Prediction from a checkpoint directory alone.

  Predictor.load("runs/three_task").predict(["my parcel never arrived"])
  -> [{"sentiment": {"label": "negative", "probs": {"negative": 0.93, ...}}, "urgency": {...}, "topic": {...}}]

CLI:
  python -m mtl_jax.predict --checkpoint=DIR --input=in.jsonl --output=out.jsonl   # rows with a "text" field
  echo "my parcel never arrived" | python -m mtl_jax.predict --checkpoint=DIR      # one text per line, readable
"""

import json
import os
import re
import sys

import jax
import numpy as np

from mtl_jax import checkpoint, cli, evaluation, kinds
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import Encoded, encode_words, make_batch, tokenize_pairs
from mtl_jax.model import Model
from mtl_jax.readers import jsonl_objects
from mtl_jax.steps import predict_step
from mtl_jax.tasks import Layout

WORD = re.compile(r"\w+(?:['\-.]\w+)*|[^\w\s]")  # words and single punctuation marks, for tagging raw text


def prediction_buckets(length_buckets) -> tuple[int, ...]:
  """Training's length buckets plus, below the largest, every multiple of 4 up to 64 and of 8 above. Prediction
  sorts texts by length, so fine buckets cut the padding (0.60 -> 0.82 of the positions real on
  benchmarks/predict.py's texts, most of them short), for one compile per bucket met (about 0.5 s for MiniLM's
  forward pass on CPU)."""
  top = max(length_buckets)
  fine = set(range(4, 65, 4)) | set(range(72, top, 8))
  return tuple(sorted(set(length_buckets) | {b for b in fine if b < top}))


def split_words(text: str) -> list[str]:
  """Raw text -> words for the taggers ("Mr. Smith's car" -> Mr . Smith's car)."""
  return WORD.findall(text)


class Predictor:
  """Every task's predictions for raw texts, from one self-describing checkpoint."""

  def __init__(self, model: Model, params: dict, tokenizer, length_buckets: tuple[int, ...], step: int):
    self.model, self.params, self.tokenizer, self.step = model, params, tokenizer, step
    self.length_buckets = prediction_buckets(length_buckets)
    self._forward = jax.jit(lambda p, b: predict_step(p, b, model=model))

  @classmethod
  def load(cls, path: str) -> "Predictor":
    """From a workdir (its best checkpoint, else its latest), a manager directory, or one step's directory."""
    mngr, step = checkpoint.find(path)
    meta = checkpoint.restore_meta(mngr, step)
    model = Model.from_meta(meta)
    # Restored onto this process's first device, whatever mesh the run was trained on.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    params = checkpoint.restore_arrays(mngr, step, {"params": checkpoint.abstract(
        shapes, jax.tree.map(lambda _: device, shapes))}, partial=True)["params"]  # a training state has more
    return cls(model, params, checkpoint.restore_tokenizer(mngr, step), meta["length_buckets"], step)

  @property
  def layout(self) -> Layout:
    return self.model.layout

  def encode(self, inputs: list, pairs: list | None = None) -> tuple[Encoded, list[list[str]] | None]:
    """Texts (or lists of words) -> examples; when a kind reads words (tagging), words are split out and kept.
    `pairs` (a second text per input, or None) are encoded as training encodes text pairs."""
    num_tasks, max_length = len(self.layout.tasks), max(self.length_buckets)
    no_labels = lambda n: (np.full((n, num_tasks), -1, np.int32), np.ones((n, num_tasks), np.float32))
    if pairs is not None or not any(k.reads_words for k in self.model.kinds):
      texts = [x if isinstance(x, str) else " ".join(x) for x in inputs]
      ids, types, _ = tokenize_pairs(texts, pairs or [None] * len(texts), self.tokenizer, max_length)
      return Encoded(ids, *no_labels(len(ids)), type_ids=types if pairs is not None else None), None
    words = [split_words(x) if isinstance(x, str) else list(x) for x in inputs]
    no_tags = [np.zeros((len(w), num_tasks), np.int32) for w in words]
    data = encode_words([tuple(w) for w in words], no_tags, *no_labels(len(words)), self.tokenizer, max_length)
    return data, words

  def outputs(self, data: Encoded, count: int, batch_size: int) -> tuple[list, np.ndarray]:
    """Each task's gathered outputs over `data` (the examples of `count` inputs), and where each input's examples
    start and end (bounds[n] to bounds[n + 1]: a long sentence's windows are adjacent)."""
    pad_id = self.tokenizer.pad_token_id or 0
    stores, _, _ = evaluation.collect(
        lambda b: (self._forward(self.params, b), 0.0, 0.0),
        lambda idx: make_batch(data, idx, batch_size, self.length_buckets, pad_id), data, self.layout, batch_size)
    sentence = np.arange(len(data)) if data.sentence is None else data.sentence
    return evaluation.task_outputs(stores, self.layout), np.searchsorted(sentence, np.arange(count + 1))

  def predict(self, inputs: list, batch_size: int = 64, pairs: list | None = None) -> list[dict]:
    """Per input (a text, or a list of words), keyed by task name:
    classification {"label", "probs"}; multilabel {"labels" (those at or above the task's threshold), "probs"};
    regression {"value"}; tagging {"words", "tags"} plus "spans" [{"text", "label", "start", "end"}] for span
    tasks. With `pairs` (each input's second text, or None) the text tasks read each pair; taggers tag the first
    text's words."""
    if not inputs:
      return []
    if pairs is not None and all(p is None for p in pairs):
      pairs = None
    inputs, taggers = list(inputs), any(k.reads_words for k in self.model.kinds)
    data, words = self.encode(inputs, None if taggers else pairs)
    main = self.outputs(data, len(inputs), batch_size)
    text = self.outputs(self.encode(inputs, list(pairs))[0], len(inputs), batch_size) if taggers and pairs else main
    source = [main if kinds.KINDS[task.kind].reads_words else text for task in self.layout.tasks]
    return [{task.name: kinds.KINDS[task.kind].prediction(task, outputs[t], np.arange(bounds[n], bounds[n + 1]),
                                                          None if words is None else words[n])
             for t, (task, (outputs, bounds)) in enumerate(zip(self.layout.tasks, source))}
            for n in range(len(inputs))]


def read_jsonl_texts(path: str) -> list[str]:
  """The "text" field of every row of a JSONL file (errors name the line)."""
  texts = []
  for where, row in jsonl_objects(path, "a JSON object with a string 'text'"):
    if not isinstance(row.get("text"), str):
      raise UserError(f"{where}: field 'text': expected a string, found {row.get('text')!r}")
    texts.append(row["text"])
  return texts


def format_readable(text: str, result: dict) -> str:
  """The text, then one line with every classification and one per tagger (spans, or word/TAG pairs)."""
  labels = [f"{task}={r['label']} ({r['probs'][r['label']]:.2f})" if "label" in r
            else f"{task}={','.join(r['labels']) or '-'}" if "labels" in r else f"{task}={r['value']:.3f}"
            for task, r in result.items() if "tags" not in r]
  lines = [text] + (["  " + "  ".join(labels)] if labels else [])
  for task, r in result.items():
    if "spans" in r:
      lines.append(f"  {task}: " + " ".join(f'"{s["text"]}"/{s["label"]}' for s in r["spans"]))
    elif "tags" in r:
      lines.append(f"  {task}: " + " ".join(f"{w}/{t}" for w, t in zip(r["words"], r["tags"])))
  return "\n".join(lines)


def main(argv) -> None:
  from absl import flags
  flag = flags.FLAGS
  with cli.user_errors():
    if len(argv) > 1:
      raise UserError(f"unexpected arguments: {argv[1:]}")
    if flag.batch_size <= 0:
      raise UserError(f"--batch_size: expected a number > 0, found {flag.batch_size}")
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


if __name__ == "__main__":
  from absl import flags as absl_flags
  from absl import logging
  absl_flags.DEFINE_string("checkpoint", None, "Workdir, checkpoint manager directory or step directory.")
  absl_flags.DEFINE_string("input", None, "JSONL file with a 'text' field per row; default: lines from stdin.")
  absl_flags.DEFINE_string("output", None, "JSONL output, one object per input row keyed by task; default stdout.")
  absl_flags.DEFINE_integer("batch_size", 64, "Texts per forward pass.")
  absl_flags.mark_flag_as_required("checkpoint")
  logging.set_verbosity(logging.WARNING)
  cli.run(main)
