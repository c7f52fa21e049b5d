"""Kinds of task, one module each: what a kind owns, from its head to its report section.

A kind (`base.Kind`) says what its head reads (pooled text features or every token), where its targets sit in a
batch, what evaluation and prediction take from its logits on device and gather on the host, its metrics and headline
score, its prediction format and its section of the evaluation report. Everything else loops over the kinds of a
layout. Adding a kind is one module and one entry in `KINDS`.
"""

from mtl_jax.kinds import classification, multilabel, regression, tagging
from mtl_jax.kinds.base import Kind

# Registry order is head order: a model's heads are initialised and applied in this order.
KINDS: dict[str, Kind] = {k.name: k for k in (classification.KIND, tagging.KIND, multilabel.KIND, regression.KIND)}
NAMES = tuple(KINDS)


def of_layout(layout) -> tuple[Kind, ...]:
  """The kinds a layout has tasks of, in registry order."""
  return tuple(k for k in KINDS.values() if layout.of_kind(k.name))


def shown() -> dict[str, str]:
  """The metrics of the console's eval lines (each kind's, in registry order) by their short names there."""
  return {"main": "main", "loss": "loss", **{k: v for kind in KINDS.values() for k, v in kind.shown.items()}}


def metric_names() -> tuple[str, ...]:
  """Every metric a task can report: `main`, `loss`, then each kind's (as metrics.jsonl names them)."""
  return ("main", "loss", *(m for k in KINDS.values() for m in k.metric_names))
