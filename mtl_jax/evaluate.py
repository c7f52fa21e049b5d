"""Scores a checkpoint on the validation or test split of the config it was trained with, and writes a report.

  python -m mtl_jax.evaluate --checkpoint=runs/pos_chunk --split=test [--output=DIR] [--data_root=../shared/data]

The split is rebuilt from the config stored in the checkpoint, with the checkpoint's tokenizer, by the code training
uses (`train.load_data`), and scored by `train.evaluate_examples` on one device: on the validation split the numbers
are those training logged for the same params. `--output` (default `<workdir>/eval_<split>`) receives
  metrics.json          every flat metric, named as in metrics.jsonl (`eval/<task>/<metric>` for validation,
                        `test/<task>/<metric>` for test, plus `<split>/mean/*` and `<split>/std/*`; NaN as null);
  report.md             the summary table (a row per task, mean, std), then per classification task a per-class table
                        and its confusion matrix, per span tagger a per-type table, per other tagger a per-tag table;
  confusion_<task>.png  per classification task: counts and row-normalised shares, rows true, columns predicted;
and report.md is printed to stdout.
"""

import dataclasses
import json
import os
import sys

import jax
import ml_collections
import numpy as np

from mtl_jax import checkpoint, evaluation, spans, train
from mtl_jax import metrics as metrics_lib
from mtl_jax.corpora import is_fraction, resolve
from mtl_jax.data import READERS
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import Encoded, make_batch
from mtl_jax.predict import Predictor
from mtl_jax.tasks import Layout

SPLITS = {"validation": "eval", "test": "test"}  # --split -> the prefix of its metrics (as training logs them)


# ---------------------------------------------------------------------------------------------------------------
# The checkpoint's config and data.

def stored_config(meta: dict, data_root: str | None) -> ml_collections.ConfigDict:
  """The training config saved in the checkpoint's meta, with `data.root` overridden when given."""
  if "config" not in meta:
    raise UserError("the checkpoint's meta holds no training config; it was not written by train_and_evaluate")
  config = ml_collections.ConfigDict(json.loads(meta["config"]))
  if data_root:
    config.data.root = data_root
  return config


def split_sources(config, split: str, tasks: tuple[str, ...]) -> dict[str, str]:
  """Where each task's `split` comes from, as markdown ({"table": ...} for a table config); tasks without that split
  are absent."""
  if config.data.get("train"):
    train_file = config.data.train
    value = str(config.data.get(split) or "")
    if not value:
      return {}
    if split == "validation" and os.path.splitext(value)[1].lower() not in READERS:
      return {"table": f"{value} of `{train_file}` (seeded split, seed {config.seed})"}
    return {"table": f"`{value}`"}
  sources = {}
  for name in tasks:
    spec = config.tasks[name].data
    value = str(spec.get(split) or "")
    if not value:
      continue
    if spec.format == "tfds":
      where = f"TFDS `{spec.dataset}` split `{value}`"
    elif is_fraction(value):
      where = f"{value} of `{resolve(config.data.root, spec.train)}` (seeded split, seed {config.seed})"
    else:
      where = f"`{resolve(config.data.root, value)}`"
    downsample = spec.get("downsample", 1.0)
    sources[name] = where + (f", downsampled to {downsample:g}" if downsample < 1.0 else "")
  return sources


def check_split(config, split: str, tasks: tuple[str, ...]) -> dict[str, str]:
  """The sources of `split`; a UserError naming the split and the splits the config has when no task has it."""
  sources = split_sources(config, split, tasks)
  if not sources:
    found = [s for s in ("train", *SPLITS) if s == "train" or split_sources(config, s, tasks)]
    field = "config.data.test (a table file)" if config.data.get("train") else f"config.tasks.<name>.data.{split}"
    raise UserError(f"--split={split}: the checkpoint's config has no {split} data (set {field} when training); "
                    f"it has: {', '.join(found)}")
  return sources


def check_layout(saved: Layout, built: Layout) -> None:
  """The data's tasks and label names must be the checkpoint's: a label id means the same class in both."""
  if saved.names != built.names:
    raise UserError(f"the data has tasks {list(built.names)} but the checkpoint was trained on {list(saved.names)}")
  for a, b in zip(saved.tasks, built.tasks):
    if (a.kind, a.labels, a.scheme) != (b.kind, b.labels, b.scheme):
      raise UserError(f"task '{a.name}': the data gives labels {list(b.labels)} ({b.kind}, scheme {b.scheme}) but the "
                      f"checkpoint was trained with {list(a.labels)} ({a.kind}, scheme {a.scheme}); "
                      "does --data_root (or config.data.root) hold the data it was trained on?")


def load_split(config, split: str, layout: Layout, tokenizer, max_length: int) -> Encoded:
  """The examples of `split`, built as training built them; the layout must match the checkpoint's."""
  built, _, validation, test = train.load_data(config, tokenizer, max_length)
  check_layout(layout, built)
  return {"validation": validation, "test": test}[split]


# ---------------------------------------------------------------------------------------------------------------
# Per-class, per-tag and per-type scores.

def per_class(cm: np.ndarray, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
  """{class: {precision, recall, f1, support}} from a confusion matrix (rows true); 0 for a ratio 0/0 (as
  scikit-learn's classification_report with zero_division=0). Every class is listed, present or not."""
  tp, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
  div = lambda a, b: np.divide(a, b, out=np.zeros(len(a)), where=b > 0)
  precision, recall, f1 = div(tp, predicted), div(tp, support), div(2 * tp, support + predicted)
  return {name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                 "support": int(support[k])} for k, name in enumerate(names)}


def classification_predictions(data: Encoded, outputs: dict, layout: Layout, t: int) -> tuple[np.ndarray, np.ndarray]:
  """(true, predicted) class ids of the rows labelled for the classification task at position `t`."""
  task, labelled = layout.tasks[t], train.labelled_rows(data, t)
  probs = outputs["classification"][labelled, layout.offsets[t]:layout.offsets[t] + task.num_classes]
  return data.labels[labelled, t], np.argmax(probs, axis=1)


def task_details(data: Encoded, outputs: dict, layout: Layout) -> dict[str, dict]:
  """Per task: {"kind": "classes", "scores", "confusion"} for classification, {"kind": "types", "scores"} for span
  taggers (span_report, with "micro avg"), {"kind": "tags", "scores"} for other taggers (over words); plus "count"
  (labelled examples, or sentences and words)."""
  details = {}
  for t, task in enumerate(layout.tasks):
    if task.kind == "classification":
      y_true, y_pred = classification_predictions(data, outputs, layout, t)
      cm = metrics_lib.confusion_matrix(y_true, y_pred, task.num_classes)
      details[task.name] = {"kind": "classes", "scores": per_class(cm, task.labels), "confusion": cm,
                            "count": f"{len(y_true)} labelled examples"}
      continue
    gold, pred = evaluation.sentence_tags(data, train.word_predictions(outputs, layout, t), t)
    count = f"{len(gold)} sentences, {sum(len(g) for g in gold)} words"
    if task.scheme:
      names = np.asarray(task.labels, dtype=object)
      scores = spans.span_report([list(names[g]) for g in gold], [list(names[p]) for p in pred], task.scheme)
      details[task.name] = {"kind": "types", "scores": scores, "count": count}
    else:
      flat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)
      cm = metrics_lib.confusion_matrix(flat(gold), flat(pred), task.num_classes)
      details[task.name] = {"kind": "tags", "scores": per_class(cm, task.labels), "count": count}
  return details


# ---------------------------------------------------------------------------------------------------------------
# Outputs: confusion matrix images, the markdown report, metrics.json.

def plot_confusion(cm: np.ndarray, labels: tuple[str, ...], title: str, path: str) -> None:
  """Counts and row-normalised shares side by side (rows true, columns predicted), written as a PNG. Uses the Agg
  canvas directly, so no pyplot state or global backend is touched."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  k, slanted = len(labels), max(map(len, labels)) > 4  # long class names are slanted under the x axis
  side = max(3.2, 0.55 * k + 1.6)
  fig = Figure(figsize=(2 * side + 0.6, side + 0.9), layout="constrained")
  FigureCanvasAgg(fig)
  totals = cm.sum(axis=1, keepdims=True)
  shares = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)
  for ax, values, name in zip(fig.subplots(1, 2), (cm, shares), ("counts", "row-normalised (recall)")):
    scale = values.max() if values.max() > 0 else 1
    ax.imshow(values, cmap="Blues", vmin=0, vmax=scale)
    for i in range(k):
      for j in range(k):
        text = f"{values[i, j]:d}" if values is cm else f"{values[i, j]:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=9,
                color="white" if values[i, j] > 0.6 * scale else "black")
    ax.set_xticks(range(k), labels, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(name, fontsize=10)
  fig.suptitle(title)
  fig.savefig(path, dpi=100)


def cell(value) -> str:
  if isinstance(value, (int, np.integer)):
    return str(value)
  return f"{value:.4f}" if np.isfinite(value) else "n/a"


def md_table(header: list[str], rows: list[list]) -> list[str]:
  """A markdown table: text in the first column, numbers (4 decimals, n/a for NaN) in the others."""
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
  return lines + ["| " + " | ".join([str(r[0]), *(cell(v) for v in r[1:])]) + " |" for r in rows]


def summary_table(per_task: dict[str, dict[str, float]], flat: dict[str, float], prefix: str) -> list[str]:
  """One row per task with every metric (span tables' per-type F1s aside), then the mean and std over tasks."""
  present = {k for m in per_task.values() for k in m if "/" not in k}
  columns = [k for k in dict.fromkeys(train.METRIC_NAMES) if k in present] + sorted(present - set(train.METRIC_NAMES))
  rows = [[name, *(m.get(k, float("nan")) for k in columns)] for name, m in per_task.items()]
  rows += [[agg, *(flat.get(f"{prefix}/{agg}/{k}", float("nan")) for k in columns)] for agg in ("mean", "std")]
  return md_table(["task", *columns], rows)


def score_rows(scores: dict[str, dict[str, float]]) -> list[list]:
  return [[name, s["precision"], s["recall"], s["f1"], s["support"]] for name, s in scores.items()]


def task_section(name: str, task, detail: dict, split: str) -> list[str]:
  """The per-class (and confusion matrix), per-type or per-tag table of one task."""
  if detail["kind"] == "classes":
    confusion = [[label, *map(int, row)] for label, row in zip(task.labels, detail["confusion"])]
    return [f"## {name}: per class", "", *md_table(["class", "precision", "recall", "f1", "support"],
                                                    score_rows(detail["scores"])), "",
            f"### {name}: confusion matrix (rows true, columns predicted)", "",
            *md_table(["true \\ predicted", *task.labels], confusion), "",
            f"![{name} confusion matrix, {split}]({confusion_file(name)})", ""]
  if detail["kind"] == "types":
    return [f"## {name}: per span type ({task.scheme}, exact match of type, start and end)", "",
            *md_table(["type", "precision", "recall", "f1", "support"], score_rows(detail["scores"])), ""]
  return [f"## {name}: per tag (over words)", "",
          *md_table(["tag", "precision", "recall", "f1", "support"], score_rows(detail["scores"])), ""]


def confusion_file(task: str) -> str:
  return f"confusion_{task}.png"


def format_report(header: dict, per_task: dict, flat: dict, details: dict, layout: Layout, split: str) -> str:
  """report.md: header (checkpoint, step, split, data, examples), summary table, then a section per task."""
  prefix = SPLITS[split]
  lines = [f"# Evaluation on the {split} split", "",
           f"- checkpoint: `{header['checkpoint']}` (step {header['step']})",
           f"- split: {split} (metrics named `{prefix}/<task>/<metric>` in metrics.json)",
           f"- examples: {header['examples']}", "- data:"]
  for task in layout.tasks:
    source = header["sources"].get(task.name, header["sources"].get("table"))
    lines.append(f"  - {task.name}: {source or f'no {split} data'} ({details[task.name]['count']})")
  lines += ["", "## Summary", "", *summary_table(per_task, flat, prefix), "",
            "Classification: `accuracy` and macro averages over classes; taggers: `accuracy` over words, "
            "`precision` / `recall` / `f1` micro over spans. `main` is each task's headline score (`f1` for span "
            "taggers, `accuracy` otherwise); mean and std are over tasks.", ""]
  for task in layout.tasks:
    lines += task_section(task.name, task, details[task.name], split)
  return "\n".join(lines)


def write_outputs(directory: str, report: str, flat: dict, details: dict, layout: Layout, split: str) -> None:
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "report.md"), "w", encoding="utf-8") as f:
    f.write(report + "\n")
  with open(os.path.join(directory, "metrics.json"), "w", encoding="utf-8") as f:
    json.dump({k: (float(v) if np.isfinite(v) else None) for k, v in flat.items()}, f, indent=2)
    f.write("\n")
  for task in layout.tasks:
    if details[task.name]["kind"] == "classes":
      plot_confusion(details[task.name]["confusion"], task.labels, f"{task.name} ({split})",
                     os.path.join(directory, confusion_file(task.name)))


# ---------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Evaluation:
  report: str  # report.md
  metrics: dict[str, float]  # metrics.json (NaN where it has null)
  details: dict[str, dict]  # per task, see task_details
  directory: str  # where the files went


def run(checkpoint_path: str, split: str = "test", output: str | None = None, batch_size: int = 64,
        data_root: str | None = None) -> Evaluation:
  """Scores the checkpoint on `split` and writes report.md, metrics.json and the confusion matrices."""
  if split not in SPLITS:
    raise UserError(f"--split: expected one of {list(SPLITS)}, found {split!r}")
  if batch_size <= 0:
    raise UserError(f"--batch_size: expected a number > 0, found {batch_size}")
  mngr, step = checkpoint.find(checkpoint_path)
  meta = checkpoint.restore_meta(mngr, step)
  config = stored_config(meta, data_root)
  predictor = Predictor.load(checkpoint_path)  # the same (manager, step) as checkpoint.find above
  layout, buckets = predictor.layout, predictor.length_buckets
  sources = check_split(config, split, layout.names)
  data = load_split(config, split, layout, predictor.tokenizer, max(buckets))

  eval_step = jax.jit(lambda p, b: train.eval_step(p, b, model=predictor.model))
  pad_id = predictor.tokenizer.pad_token_id or 0
  per_task, flat, outputs = train.evaluate_examples(
      lambda b: eval_step(predictor.params, b), lambda idx: make_batch(data, idx, batch_size, buckets, pad_id),
      data, layout, batch_size, SPLITS[split])
  details = task_details(data, outputs, layout)

  examples = f"{len(data)}" + (f" ({len(np.unique(data.sentence))} sentences or texts, long sentences split into "
                               "windows)" if data.sentence is not None else "")
  header = {"checkpoint": os.path.join(str(mngr.directory), str(step)), "step": step, "sources": sources,
            "examples": examples}
  report = format_report(header, per_task, flat, details, layout, split)
  directory = output or os.path.join(os.path.dirname(str(mngr.directory)), f"eval_{split}")
  write_outputs(directory, report, flat, details, layout, split)
  return Evaluation(report, flat, details, directory)


def define_flags(flag_values=None) -> None:
  """The CLI's flags, on absl's global FLAGS unless given (tests parse into a FlagValues of their own)."""
  from absl import flags
  fv = flags.FLAGS if flag_values is None else flag_values  # an empty FlagValues is falsy
  flags.DEFINE_string("checkpoint", None, "Workdir, checkpoint manager directory or step directory.", flag_values=fv)
  flags.DEFINE_string("split", "test", f"The config's split to score: one of {list(SPLITS)}.", flag_values=fv)
  flags.DEFINE_string("output", None, "Directory for report.md, metrics.json and confusion_<task>.png; default "
                      "<workdir>/eval_<split>.", flag_values=fv)
  flags.DEFINE_integer("batch_size", 64, "Examples per forward pass.", flag_values=fv)
  flags.DEFINE_string("data_root", None, "Overrides config.data.root (where a corpus-per-task config's corpora "
                      "live).", flag_values=fv)
  flags.mark_flag_as_required("checkpoint", flag_values=fv)


def main(argv, flag_values=None) -> None:
  """Prints report.md (and where the files went, on stderr); a UserError is one line on stderr and exit code 2."""
  from absl import flags
  flag = flags.FLAGS if flag_values is None else flag_values
  try:
    if len(argv) > 1:
      raise UserError(f"unexpected arguments: {argv[1:]}")
    result = run(flag.checkpoint, flag.split, flag.output, flag.batch_size, flag.data_root)
    print(result.report)
    print(f"wrote report.md, metrics.json and the confusion matrices to {result.directory}", file=sys.stderr)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" banner
  from absl import app, logging
  define_flags()
  logging.set_verbosity(logging.WARNING)
  app.run(main)
