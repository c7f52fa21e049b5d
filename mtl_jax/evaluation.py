"""Scoring any split: every example once through the forward pass, outputs gathered per kind, metrics per task.

`collect` is the batch loop that evaluation and prediction share; `score` turns what it gathered into the metrics
training logs (`<split>/<task>/<metric>`, `<split>/mean/<metric>`, `<split>/std/<metric>`), which the evaluate CLI
reports too. Each kind (mtl_jax/kinds) says what its tasks gather and how they are scored.
"""

import numpy as np

from mtl_jax import kinds
from mtl_jax import metrics as metrics_lib
from mtl_jax.input_pipeline import Encoded, EvalBatch
from mtl_jax.tasks import Layout

METRIC_NAMES = kinds.metric_names()
SHOWN = kinds.shown()


def collect(step, batch, data: Encoded, layout: Layout,
            batches: list[EvalBatch]) -> tuple[dict, np.ndarray, np.ndarray]:
  """Every example of `data` once, in `batches` (`input_pipeline.eval_batches`): `batch(b)` builds batch b's arrays,
  `step(arrays)` returns (outputs by kind, loss sums, loss counts). Returns each kind's gathered outputs (its store)
  and the summed per-task loss sums and counts."""
  present = kinds.of_layout(layout)
  stores = {k.name: k.empty(len(data), layout.total(k.name)) for k in present}
  sums, counts = 0.0, 0.0
  for b in batches:
    out, s, c = step(batch(b))
    where = b.positions(data)
    for k in present:
      k.gather(stores[k.name], np.asarray(out[k.name]), data, b.idx, where)
    sums, counts = sums + np.asarray(s), counts + np.asarray(c)
  return stores, sums, counts


def task_outputs(stores: dict, layout: Layout) -> list:
  """Each task's share of its kind's store, by task position."""
  return [kinds.KINDS[task.kind].task_output(stores[task.kind], layout, t) for t, task in enumerate(layout.tasks)]


def task_metrics(data: Encoded, stores: dict, loss_sums: np.ndarray, loss_counts: np.ndarray,
                 layout: Layout) -> dict[str, dict[str, float]]:
  """Host-side metrics per task from the gathered outputs (rows without a label for a task are left out)."""
  result = {}
  for t, (task, output) in enumerate(zip(layout.tasks, task_outputs(stores, layout))):
    m = kinds.KINDS[task.kind].metrics(data, output, t, layout)
    m["loss"] = float(loss_sums[t] / loss_counts[t]) if loss_counts[t] > 0 else float("nan")
    m["main"] = m[task.main_metric]
    result[task.name] = m
  return result


def flatten_metrics(per_task: dict[str, dict[str, float]], prefix: str = "eval") -> dict[str, float]:
  """{task: {metric: v}} -> {'eval/<task>/<metric>': v, 'eval/mean/<metric>': .., 'eval/std/<metric>': ..}."""
  flat = {f"{prefix}/{task}/{k}": v for task, m in per_task.items() for k, v in m.items()}
  overall = {task: {k: v for k, v in m.items() if "/" not in k} for task, m in per_task.items()}  # no per-type F1
  flat.update({f"{prefix}/{k}": v for k, v in metrics_lib.mean_and_std(overall).items()})
  return flat


def score(step, batch, data: Encoded, layout: Layout, batches: list[EvalBatch],
          split: str = "eval") -> tuple[dict[str, dict[str, float]], dict[str, float], dict]:
  """`collect`, then the metrics per task, the flat metrics (`flatten_metrics` with prefix `split`) and the stores."""
  stores, sums, counts = collect(step, batch, data, layout, batches)
  per_task = task_metrics(data, stores, sums, counts, layout)
  return per_task, flatten_metrics(per_task, split), stores


def format_eval_lines(step: int, per_task: dict[str, dict[str, float]], flat: dict[str, float],
                      split: str = "eval") -> list[str]:
  """One line per task and one for the mean, as Flair prints its dev scores."""
  width = max(len(name) for name in [*per_task, "mean"])
  mean = {k.split("/", 2)[2]: v for k, v in flat.items() if k.startswith(f"{split}/mean/")}
  line = lambda name, m: f"{split} step {step:>6} | {name:<{width}} | " + "  ".join(
      f"{short} {m[k]:.4f}" for k, short in SHOWN.items() if k in m)
  return [line(name, m) for name, m in per_task.items()] + [line("mean", mean)]
