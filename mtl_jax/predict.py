"""Prediction from a checkpoint directory alone.

  Predictor.load("runs/three_task").predict(["my parcel never arrived"])
  -> [{"sentiment": {"label": "negative", "probs": {"negative": 0.93, ...}}, "urgency": {...}, "topic": {...}}]

CLI:
  python -m mtl_jax.predict --checkpoint=DIR --input=in.jsonl --output=out.jsonl   # "text" (+ "text_pair") or "words"
  python -m mtl_jax.predict --checkpoint=DIR --format=conll --input=test.conll     # a tag column per tagger appended
  echo "my parcel never arrived" | python -m mtl_jax.predict --checkpoint=DIR      # one text per line, readable
"""

import json
import os
import re
import sys

import jax
import numpy as np

from mtl_jax import checkpoint, cli, evaluation, kinds
from mtl_jax.data import parse_pair
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import Encoded, encode_words, eval_batches, eval_rows, tokenize_pairs, with_tags
from mtl_jax.model import Model
from mtl_jax.readers import conll_words, jsonl_objects, read_text, split_lines
from mtl_jax.steps import predict_step
from mtl_jax.tasks import Layout

WORD = re.compile(r"\w+(?:['\-.]\w+)*|[^\w\s]")  # words and single punctuation marks, for tagging raw text


def split_words(text: str) -> list[str]:
  """Raw text -> words for the taggers ("Mr. Smith's car" -> Mr . Smith's car)."""
  return WORD.findall(text)


class Predictor:
  """Every task's predictions for raw texts, from one self-describing checkpoint."""

  def __init__(self, model: Model, params: dict, tokenizer, length_buckets: tuple[int, ...], step: int):
    self.model, self.params, self.tokenizer, self.step = model, params, tokenizer, step
    self.length_buckets = tuple(length_buckets)
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

  def encode(self, inputs: list, pairs: list | None = None) -> Encoded:
    """Texts (lists of words joined by spaces), each with its pair when `pairs` has one, encoded as training encodes
    a text corpus's examples: what the text tasks read."""
    texts = [x if isinstance(x, str) else " ".join(x) for x in inputs]
    ids, types, _ = tokenize_pairs(texts, pairs or [None] * len(texts), self.tokenizer, max(self.length_buckets))
    data = Encoded(ids, *self.no_labels(len(ids)), type_ids=types if pairs is not None else None)
    return with_tags(data) if self.taggers else data  # no words: the taggers' outputs here are not read

  def encode_words(self, inputs: list) -> tuple[Encoded, list[list[str]]]:
    """Texts (split into words) or lists of words -> word examples, tags read at first sub-tokens: what the taggers
    read; and the words."""
    words = [split_words(x) if isinstance(x, str) else list(x) for x in inputs]
    no_tags = [np.zeros((len(w), len(self.layout.tasks)), np.int32) for w in words]
    return encode_words([tuple(w) for w in words], no_tags, *self.no_labels(len(words)), self.tokenizer,
                        max(self.length_buckets)), words

  def no_labels(self, count: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.full((count, len(self.layout.tasks)), -1, np.int32),
            np.ones((count, len(self.layout.tasks)), np.float32))

  @property
  def taggers(self) -> bool:
    return any(k.reads_words for k in self.model.kinds)

  def outputs(self, data: Encoded, count: int, batch_size: int) -> tuple[list, np.ndarray]:
    """Each task's gathered outputs over `data` (the examples of `count` inputs), and where each input's examples
    start and end (bounds[n] to bounds[n + 1]: a long sentence's windows are adjacent)."""
    pad_id = self.tokenizer.pad_token_id or 0
    batches = eval_batches(data.lengths, eval_rows(batch_size, self.length_buckets), max(self.length_buckets))
    stores, _, _ = evaluation.collect(lambda b: (self._forward(self.params, b), 0.0, 0.0),
                                      lambda b: b.build(data, pad_id), data, self.layout, batches)
    sentence = np.arange(len(data)) if data.sentence is None else data.sentence
    return evaluation.task_outputs(stores, self.layout), np.searchsorted(sentence, np.arange(count + 1))

  def predict(self, inputs: list, batch_size: int = 64, pairs: list | None = None,
              tasks: list[str] | None = None) -> list[dict]:
    """Per input (a text, or a list of words), keyed by task name:
    classification {"label", "probs"}; multilabel {"labels" (those at or above the task's threshold), "probs"};
    regression {"value"}; tagging {"words", "tags"} plus "spans" [{"text", "label", "start", "end"}] for span
    tasks. The text tasks read each text as training reads a text corpus's (with its pair from `pairs`, each
    input's second text or None); taggers tag the words (a text's split out, a list's as given). `tasks` (names)
    restricts the result, and the passes run, to those tasks."""
    if not inputs:
      return []
    if pairs is not None and len(pairs) != len(inputs):
      raise ValueError(f"{len(pairs)} pairs for {len(inputs)} inputs; give one per input (None: no pair)")
    if pairs is not None and all(p is None for p in pairs):
      pairs = None
    chosen = [t for t, task in enumerate(self.layout.tasks) if tasks is None or task.name in tasks]
    reads_words = [kinds.KINDS[self.layout.tasks[t].kind].reads_words for t in chosen]
    inputs, words, by_words, by_text = list(inputs), None, None, None
    if any(reads_words):  # the taggers read words; the text tasks, as in training, the text (and its pair)
      data, words = self.encode_words(inputs)
      by_words = self.outputs(data, len(inputs), batch_size)
    if not all(reads_words):
      by_text = self.outputs(self.encode(inputs, pairs), len(inputs), batch_size)
    results = [{} for _ in inputs]
    for t, words_read in zip(chosen, reads_words):
      task, (outputs, bounds) = self.layout.tasks[t], by_words if words_read else by_text
      for n, result in enumerate(results):
        result[task.name] = kinds.KINDS[task.kind].prediction(task, outputs[t], np.arange(bounds[n], bounds[n + 1]),
                                                              None if words is None else words[n])
    return results


def jsonl_input(where: str, row: dict) -> dict:
  """The input fields of one JSONL row: {"text": a text} or {"words": a list of words}, with "text_pair" when the row
  has a second text; anything else is an error naming the field."""
  if "text" in row and "words" in row:
    raise UserError(f"{where}: fields 'text' and 'words': expected one of them, found both")
  pair = parse_pair(row.get("text_pair"), where)  # as a table's: null or "" is no pair
  given = {} if pair is None else {"text_pair": pair}
  if "words" in row:
    words = row["words"]
    if not isinstance(words, list):
      raise UserError(f"{where}: field 'words': expected a list of strings, found {words!r}")
    if (bad := next((i for i, w in enumerate(words) if not isinstance(w, str)), None)) is not None:
      raise UserError(f"{where}: field 'words'[{bad}]: expected a string, found {words[bad]!r}")
    return {"words": words, **given}
  if "text" not in row:
    raise UserError(f"{where}: field 'text' or 'words': expected a string 'text' or a list of strings 'words', "
                    f"found neither (keys: {sorted(row)})")
  if not isinstance(row["text"], str):
    raise UserError(f"{where}: field 'text': expected a string, found {row['text']!r}")
  return {"text": row["text"], **given}


def read_jsonl_inputs(path: str) -> list[dict]:
  """The input fields of every row of a JSONL file (`jsonl_input`); errors name the line and the field."""
  return [jsonl_input(where, row) for where, row in jsonl_objects(path, "a JSON object with 'text' or 'words'")]


def predict_rows(predictor: "Predictor", inputs: list[dict], batch_size: int) -> list[str]:
  """Output lines: each row's input fields ("text" or "words", and "text_pair") and its results keyed by task."""
  results = predictor.predict([x["text"] if "text" in x else x["words"] for x in inputs], batch_size,
                              [x.get("text_pair") for x in inputs])
  return [json.dumps({**x, **result}, ensure_ascii=False) + "\n" for x, result in zip(inputs, results)]


def tagging_tasks(layout: Layout) -> list[str]:
  """The names of the layout's tagging tasks, in layout order: the columns --format=conll appends."""
  return [layout.tasks[i].name for i in layout.of_kind("tagging")]


def split_line_ends(text: str) -> tuple[list[str], list[str]]:
  """A file's lines without their ends, and each line's end ("\\r" of a CRLF line, else ""), so that a line written
  back as line + appended columns + end + "\\n" keeps every original byte (a final newline is added if missing)."""
  lines = split_lines(text)
  return lines, ["\r" if line.endswith("\r") else "" for line in text.split("\n")[:len(lines)]]


def conll_output(lines: list[str], ends: list[str], sentences: list[list[tuple[int, str]]], results: list[dict],
                 tasks: list[str]) -> list[str]:
  """Every line of the input as it was, each token line followed by one predicted tag per task in `tasks`,
  separated as the line is (a tab when it holds one, else a space); blank and -DOCSTART- lines unchanged."""
  appended = {}
  for sentence, result in zip(sentences, results):
    for position, (i, _) in enumerate(sentence):
      appended[i] = [result[task]["tags"][position] for task in tasks]
  out = []
  for i, line in enumerate(lines):
    separator = "\t" if "\t" in line else " "
    out.append(line + "".join(separator + tag for tag in appended.get(i, [])) + ends[i] + "\n")
  return out


def read_conll_input(path: str | None, word_column: int) -> tuple[list[str], list[str], list[list[tuple[int, str]]]]:
  """A CoNLL file (stdin when `path` is None): its lines, their ends and its sentences (see readers.conll_words)."""
  if word_column < 0:
    raise UserError(f"--word_column: expected a column index >= 0, found {word_column}")
  text = read_text(path) if path else sys.stdin.read()
  lines, ends = split_line_ends(text)
  return lines, ends, conll_words(lines, path or "<stdin>", word_column)


def predict_conll(predictor: "Predictor", lines: list[str], ends: list[str], sentences: list[list[tuple[int, str]]],
                  batch_size: int) -> list[str]:
  """--format=conll: the file's lines (read_conll_input) with a predicted tag column per tagging task appended."""
  tasks = tagging_tasks(predictor.layout)
  if not tasks:
    raise UserError(f"--format=conll: the checkpoint has no tagging task (its tasks: "
                    f"{', '.join(predictor.layout.names)}); predict its texts with JSONL input instead")
  results = predictor.predict([[word for _, word in sentence] for sentence in sentences], batch_size, tasks=tasks)
  return conll_output(lines, ends, sentences, results, tasks)


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


def write_lines(rows: list[str], output: str | None) -> None:
  if output:
    with open(output, "w", encoding="utf-8", newline="") as f:
      f.writelines(rows)
  else:
    sys.stdout.writelines(rows)


def main(argv) -> None:
  from absl import flags
  flag = flags.FLAGS
  with cli.user_errors():
    if len(argv) > 1:
      raise UserError(f"unexpected arguments: {argv[1:]}")
    if flag.batch_size <= 0:
      raise UserError(f"--batch_size: expected a number > 0, found {flag.batch_size}")
    if flag.input and not os.path.isfile(flag.input):
      raise UserError(f"{flag.input}: file not found")
    if flag.format == "conll":  # the checkpoint is loaded after the input is read: bad input fails in a second
      conll = read_conll_input(flag.input, flag.word_column)
      write_lines(predict_conll(Predictor.load(flag.checkpoint), *conll, flag.batch_size), flag.output)
    elif flag.input:
      inputs = read_jsonl_inputs(flag.input)
      write_lines(predict_rows(Predictor.load(flag.checkpoint), inputs, flag.batch_size), flag.output)
    else:
      predictor = Predictor.load(flag.checkpoint)
      texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
      for text, result in zip(texts, predictor.predict(texts, flag.batch_size)):
        print(format_readable(text, result))


if __name__ == "__main__":
  from absl import flags as absl_flags
  from absl import logging
  absl_flags.DEFINE_string("checkpoint", None, "Workdir, checkpoint manager directory or step directory.")
  absl_flags.DEFINE_string("input", None, "Input file (see --format); default: stdin (for jsonl: one text per line, "
                           "printed readably).")
  absl_flags.DEFINE_enum("format", "jsonl", ["jsonl", "conll"], "jsonl: rows with 'text' (and 'text_pair') or "
                         "'words' in, one object per row keyed by task out; conll: a CoNLL file in, the same lines "
                         "with a predicted tag column per tagging task appended out.")
  absl_flags.DEFINE_integer("word_column", 0, "--format=conll: the column of the words.")
  absl_flags.DEFINE_string("output", None, "Output file (JSONL, or CoNLL with --format=conll); default stdout.")
  absl_flags.DEFINE_integer("batch_size", 64, "Texts per forward pass at the shortest length bucket (texts are "
                            "packed into rows of the longest, as many tokens a pass).")
  absl_flags.mark_flag_as_required("checkpoint")
  logging.set_verbosity(logging.WARNING)
  cli.run(main)
