"""Scores a checkpoint on the validation or test split of the config it was trained with, and writes a report.

  python -m mtl_jax.evaluate --checkpoint=runs/pos_chunk --split=test [--output=DIR] [--data_root=../shared/data]

The split is rebuilt from the config stored in the checkpoint, with the checkpoint's tokenizer, by the code training
uses (`corpora.load_data`), and scored by `evaluation.score` on one device: on the validation split the numbers
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

from mtl_jax import checkpoint, cli, corpora, evaluation, kinds, report, steps
from mtl_jax.corpora import resolve
from mtl_jax.data import is_fraction
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import Encoded, eval_batches, eval_rows
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
    if is_fraction(value):
      return {"table": f"{value} of `{train_file}` (seeded split, seed {config.seed})"}
    return {"table": f"`{value}`"}
  sources = {}
  for name in tasks:
    spec = config.tasks[name].data
    value = str(spec.get(split) or "")
    if not value:
      continue
    dataset = {"tfds": "TFDS", "hf": "Hugging Face"}.get(spec.format)  # splits of a dataset, not files
    if dataset and not is_fraction(value):
      where = f"{dataset} `{spec.dataset}` split `{value}`"
    elif is_fraction(value):
      train = (f"{dataset} `{spec.dataset}` split `{spec.train}`" if dataset
               else f"`{resolve(config.data.root, spec.train)}`")
      where = f"{value} of {train} (seeded split, seed {config.seed})"
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
  built, _, validation, test = corpora.load_data(config, tokenizer, max_length)
  check_layout(layout, built)
  return {"validation": validation, "test": test}[split]


# ---------------------------------------------------------------------------------------------------------------
# The report: a summary table, then each task's section (its kind's), and the kinds' files beside it.

def summary_table(per_task: dict[str, dict[str, float]], flat: dict[str, float], prefix: str) -> list[str]:
  """One row per task with every metric (span tables' per-type F1s aside), then the mean and std over tasks."""
  present = {k for m in per_task.values() for k in m if "/" not in k}
  names = evaluation.METRIC_NAMES
  columns = [k for k in dict.fromkeys(names) if k in present] + sorted(present - set(names))
  rows = [[name, *(m.get(k, float("nan")) for k in columns)] for name, m in per_task.items()]
  rows += [[agg, *(flat.get(f"{prefix}/{agg}/{k}", float("nan")) for k in columns)] for agg in ("mean", "std")]
  return report.md_table(["task", *columns], rows)


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
            "Classification: `accuracy` and macro averages over classes; multilabel: micro and macro F1 at the "
            "task's threshold, `subset_accuracy` (every label right), macro AUROC; regression: Pearson, Spearman, "
            "MSE, MAE; taggers: `accuracy` over words, `precision` / `recall` / `f1` micro over spans. `main` is each "
            "task's headline score (`f1` for span taggers, `f1_micro` for multilabel, `pearson` for regression, "
            "`accuracy` otherwise); mean and std are over tasks.", ""]
  for task in layout.tasks:
    lines += kinds.KINDS[task.kind].report_section(task, details[task.name], split)
  return "\n".join(lines)


def write_outputs(directory: str, report_text: str, flat: dict, details: dict, layout: Layout, split: str) -> None:
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "report.md"), "w", encoding="utf-8") as f:
    f.write(report_text + "\n")
  with open(os.path.join(directory, "metrics.json"), "w", encoding="utf-8") as f:
    json.dump({k: (float(v) if np.isfinite(v) else None) for k, v in flat.items()}, f, indent=2)
    f.write("\n")
  for task in layout.tasks:
    kinds.KINDS[task.kind].write_files(directory, task, details[task.name], split)


# ---------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Evaluation:
  report: str  # report.md
  metrics: dict[str, float]  # metrics.json (NaN where it has null)
  details: dict[str, dict]  # per task, its kind's `details`
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

  eval_step = jax.jit(lambda p, b: steps.eval_step(p, b, model=predictor.model))
  pad_id = predictor.tokenizer.pad_token_id or 0
  per_task, flat, stores = evaluation.score(
      lambda b: eval_step(predictor.params, b), lambda b: b.build(data, pad_id), data, layout,
      eval_batches(data.lengths, eval_rows(batch_size, buckets), max(buckets)), SPLITS[split])
  details = {task.name: kinds.KINDS[task.kind].details(data, output, t, layout)
             for t, (task, output) in enumerate(zip(layout.tasks, evaluation.task_outputs(stores, layout)))}

  examples = f"{len(data)}" + (f" ({len(np.unique(data.sentence))} sentences or texts, long sentences split into "
                               "windows)" if data.sentence is not None else "")
  header = {"checkpoint": os.path.join(str(mngr.directory), str(step)), "step": step, "sources": sources,
            "examples": examples}
  text = format_report(header, per_task, flat, details, layout, split)
  directory = output or os.path.join(os.path.dirname(str(mngr.directory)), f"eval_{split}")
  write_outputs(directory, text, flat, details, layout, split)
  return Evaluation(text, flat, details, directory)


def define_flags(flag_values=None) -> None:
  """The CLI's flags, on absl's global FLAGS unless given (tests parse into a FlagValues of their own)."""
  from absl import flags
  fv = flags.FLAGS if flag_values is None else flag_values  # an empty FlagValues is falsy
  flags.DEFINE_string("checkpoint", None, "Workdir, checkpoint manager directory or step directory.", flag_values=fv)
  flags.DEFINE_string("split", "test", f"The config's split to score: one of {list(SPLITS)}.", flag_values=fv)
  flags.DEFINE_string("output", None, "Directory for report.md, metrics.json and confusion_<task>.png; default "
                      "<workdir>/eval_<split>.", flag_values=fv)
  flags.DEFINE_integer("batch_size", 64, "Texts per forward pass at the shortest length bucket (texts are packed "
                       "into rows of the longest, as many tokens a pass).", flag_values=fv)
  flags.DEFINE_string("data_root", None, "Overrides config.data.root (where a corpus-per-task config's corpora "
                      "live).", flag_values=fv)
  flags.mark_flag_as_required("checkpoint", flag_values=fv)


def main(argv, flag_values=None) -> None:
  """Prints report.md (and where the files went, on stderr); a UserError is one line on stderr and exit code 2."""
  from absl import flags
  flag = flags.FLAGS if flag_values is None else flag_values
  with cli.user_errors():
    if len(argv) > 1:
      raise UserError(f"unexpected arguments: {argv[1:]}")
    result = run(flag.checkpoint, flag.split, flag.output, flag.batch_size, flag.data_root)
    print(result.report)
    print(f"wrote report.md, metrics.json and the confusion matrices to {result.directory}", file=sys.stderr)


if __name__ == "__main__":
  from absl import logging
  define_flags()
  logging.set_verbosity(logging.WARNING)
  cli.run(main)
