"""Named tasks and the layout of their logits: the one place the task layout is computed.

A task comes from `config.tasks.<name>` (its fields: mtl_jax/schema.py, TASK_FIELDS). The layout fixes the one order
of the tasks (`task_order`: a table row's `labels`, else config.tasks) and derives group sizes and offsets from it:
the tasks of a kind share one grouped head (mtl_jax/kinds), and each task's logits are a consecutive slice of its
kind's head. Sizes are never typed twice.
"""

import dataclasses

from mtl_jax import kinds
from mtl_jax.errors import UserError

# Defaults of the fields of `config.tasks.<name>` a Task takes (the schema documents every field: mtl_jax/schema.py).
DEFAULTS = {"kind": "classification", "weight": 1.0, "label_smoothing": 0.0, "scheme": None, "loss": None,
            "threshold": 0.5}


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  kind: str
  labels: tuple[str, ...]  # class names; class id i is labels[i]
  weight: float = 1.0  # factor of this task's mean loss in the total loss
  label_smoothing: float = 0.0
  scheme: str | None = None  # tagging: the span scheme of the tags, None when tags are not spans (POS)
  loss: str | None = None  # regression: "mse" or "huber"; None: the kind's default
  threshold: float = 0.5  # multilabel: a label is predicted when its probability is at least this

  @property
  def num_classes(self) -> int:
    return len(self.labels)

  @property
  def width(self) -> int:
    """The task's outputs in its kind's head (a logit per class or label; one score for regression)."""
    return kinds.KINDS[self.kind].width(self)

  @property
  def target_width(self) -> int:
    """The task's float targets per example (a batch's `targets` columns): multi-hot labels, a score, or none."""
    return kinds.KINDS[self.kind].target_width(self)

  @property
  def main_metric(self) -> str:
    """The task's headline score, its kind's choice (accuracy; span F1 for span taggers; micro F1 for multilabel;
    Pearson for regression)."""
    return kinds.KINDS[self.kind].main_metric(self)


def _per_task(field: str, doc: str) -> property:
  return property(lambda self: tuple(getattr(t, field) for t in self.tasks), doc=doc)


@dataclasses.dataclass(frozen=True)
class Layout:
  """Tasks in order, and where each task's logits sit in the grouped head's output."""
  tasks: tuple[Task, ...]

  names = _per_task("name", "The tasks' names, in order.")
  weights = _per_task("weight", "Each task's static factor in the training objective.")
  group_sizes = _per_task("width", "Each task's outputs in its head (its number of classes, 1 for a score).")

  @property
  def offsets(self) -> tuple[int, ...]:
    """Where each task's logits start in its kind's head output."""
    return tuple(sum(u.width for u in self.tasks[:i] if u.kind == t.kind) for i, t in enumerate(self.tasks))

  @property
  def target_offsets(self) -> tuple[int, ...]:
    """Where each task's float targets start in an example's `targets` (multilabel and regression tasks)."""
    return tuple(sum(u.target_width for u in self.tasks[:i]) for i in range(len(self.tasks)))

  @property
  def target_total(self) -> int:
    return sum(t.target_width for t in self.tasks)

  def target_columns(self, t: int) -> slice:
    """Task t's columns of `targets`."""
    return slice(self.target_offsets[t], self.target_offsets[t] + self.tasks[t].target_width)

  def of_kind(self, kind: str) -> tuple[int, ...]:
    """Positions of the tasks of one kind."""
    return tuple(i for i, t in enumerate(self.tasks) if t.kind == kind)

  def total(self, kind: str) -> int:
    """Width of the head of one kind: the sum of its tasks' widths (class or label counts; 1 per score)."""
    return sum(t.width for t in self.tasks if t.kind == kind)

  def to_dict(self) -> list[dict]:
    return [{**dataclasses.asdict(t), "labels": list(t.labels)} for t in self.tasks]

  @classmethod
  def from_dict(cls, tasks: list[dict]) -> "Layout":
    return cls(tuple(Task(**{**t, "labels": tuple(t["labels"])}) for t in tasks))


def task_from_config(name: str, cfg, data_labels: tuple[str, ...] = ()) -> Task:
  """Builds one Task from its config entry (checked by schema.validate); `data_labels` (the label set found in the
  training data) serve when the config names none."""
  where = f"config.tasks.{name}"
  field = lambda key: cfg.get(key, DEFAULTS[key])
  kind = kinds.KINDS[field("kind")]
  labels, num_classes = cfg.get("labels") or data_labels, cfg.get("num_classes")
  if labels:
    labels = tuple(str(label) for label in labels)
  elif num_classes:
    labels = tuple(str(i) for i in range(num_classes))
  elif kind.min_labels:
    raise UserError(f"{where}: give `labels` (class names) or `num_classes`")
  if len(labels) < kind.min_labels:
    raise UserError(f"{where}: a {kind.name} task needs at least {kind.min_labels} labels, found {len(labels)}")
  return Task(name, kind.name, labels, float(field("weight")), float(field("label_smoothing")), field("scheme"),
              field("loss"), float(field("threshold")))


def chosen_tasks(config) -> list[str]:
  """`config.train.tasks`: the tasks to train and evaluate (empty: all of `config.tasks`)."""
  return list(config.train.get("tasks", ())) or list(config.tasks.keys())


def task_order(config) -> list[str]:
  """The one task order: a table's `config.data.label_order` (the order of a row's `labels`), else (and for a corpus
  per task always) the order of `config.tasks`."""
  return list(config.data.get("train") and config.data.get("label_order") or config.tasks.keys())


def build_layout(config, chosen: list[str], data_labels: dict[str, tuple[str, ...]]) -> Layout:
  """The layout of the `chosen` tasks, in `task_order`; `data_labels` (found in the training data) name the classes
  of the tasks whose config names none."""
  return Layout(tuple(task_from_config(n, config.tasks[n], data_labels.get(n, ()))
                      for n in task_order(config) if n in chosen))


def layout_from_config(config) -> Layout:
  """The layout of every task of `config.tasks`, with the classes the config names (a table's tasks)."""
  return build_layout(config, list(config.tasks.keys()), {})
