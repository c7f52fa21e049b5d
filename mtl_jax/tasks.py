"""Named tasks and the layout of their logits: the one place the task layout is computed.

A task comes from `config.tasks.<name>`: `kind` ('classification' of a whole text, or 'tagging' of every word),
`labels` (class names) or `num_classes`, `weight` (its factor in the total loss), `label_smoothing`, and for taggers
the span `scheme` (IOB1, IOB2, BIOES; None for tags without spans, e.g. POS). The layout fixes an order of the tasks
(the order of each table row's `labels` list) and derives group sizes and offsets from it: classification tasks
share one grouped head over the pooled text, tagging tasks one grouped head over every token, and each task's
logits are a consecutive slice of its kind's head. Sizes are never typed twice.
"""

import dataclasses
import difflib

from mtl_jax.errors import UserError

KINDS = ("classification", "tagging")
SCHEMES = ("IOB1", "IOB2", "BIOES")
TASK_FIELDS = ("kind", "labels", "num_classes", "weight", "label_smoothing", "scheme", "data")


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  kind: str
  labels: tuple[str, ...]  # class names; class id i is labels[i]
  weight: float = 1.0  # factor of this task's mean loss in the total loss
  label_smoothing: float = 0.0
  scheme: str | None = None  # tagging: the span scheme of the tags, None when tags are not spans (POS)

  @property
  def num_classes(self) -> int:
    return len(self.labels)

  @property
  def main_metric(self) -> str:
    """The task's headline score: span F1 for span taggers, (token or text) accuracy otherwise."""
    return "f1" if self.kind == "tagging" and self.scheme else "accuracy"


@dataclasses.dataclass(frozen=True)
class Layout:
  """Tasks in order, and where each task's logits sit in the grouped head's output."""
  tasks: tuple[Task, ...]

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(t.name for t in self.tasks)

  @property
  def weights(self) -> tuple[float, ...]:
    """Each task's static factor in the training objective."""
    return tuple(t.weight for t in self.tasks)

  @property
  def group_sizes(self) -> tuple[int, ...]:
    return tuple(t.num_classes for t in self.tasks)

  @property
  def offsets(self) -> tuple[int, ...]:
    """Where each task's logits start in its kind's head output."""
    return tuple(sum(u.num_classes for u in self.tasks[:i] if u.kind == t.kind) for i, t in enumerate(self.tasks))

  def of_kind(self, kind: str) -> tuple[int, ...]:
    """Positions of the tasks of one kind."""
    return tuple(i for i, t in enumerate(self.tasks) if t.kind == kind)

  def total(self, kind: str) -> int:
    """Width of the head of one kind: the sum of its tasks' class counts."""
    return sum(t.num_classes for t in self.tasks if t.kind == kind)

  def to_dict(self) -> list[dict]:
    return [{**dataclasses.asdict(t), "labels": list(t.labels)} for t in self.tasks]

  @classmethod
  def from_dict(cls, tasks: list[dict]) -> "Layout":
    return cls(tuple(Task(**{**t, "labels": tuple(t["labels"])}) for t in tasks))


def task_from_config(name: str, cfg, data_labels: tuple[str, ...] = ()) -> Task:
  """Builds one Task from its config entry, checking every field; `data_labels` (the label set found in the
  training data) serve when the config names none."""
  where = f"config.tasks.{name}"
  for key in cfg:
    if key not in TASK_FIELDS:
      hint = difflib.get_close_matches(key, TASK_FIELDS, n=1)
      raise UserError(f"{where}.{key}: no such task field" + (f" (did you mean {hint[0]!r}?)" if hint
                                                                else f"; expected one of {TASK_FIELDS}"))
  kind = cfg.get("kind", "classification")
  if kind not in KINDS:
    raise UserError(f"{where}.kind: expected one of {KINDS}, found {kind!r}")
  labels, num_classes = cfg.get("labels") or data_labels, cfg.get("num_classes")
  if labels:
    labels = tuple(str(label) for label in labels)
    if num_classes and num_classes != len(labels):
      raise UserError(f"{where}: num_classes={num_classes} but {len(labels)} labels are named")
    if len(set(labels)) != len(labels):
      raise UserError(f"{where}.labels: names must be distinct, found {list(labels)}")
  elif num_classes:
    labels = tuple(str(i) for i in range(num_classes))
  else:
    raise UserError(f"{where}: give `labels` (class names) or `num_classes`")
  if len(labels) < 2:
    raise UserError(f"{where}: a task needs at least 2 classes, found {len(labels)}")
  scheme = cfg.get("scheme")
  if scheme is not None and (kind != "tagging" or scheme not in SCHEMES):
    raise UserError(f"{where}.scheme: expected one of {SCHEMES} for a tagging task, found {scheme!r}")
  weight, smoothing = float(cfg.get("weight", 1.0)), float(cfg.get("label_smoothing", 0.0))
  if weight < 0:
    raise UserError(f"{where}.weight: expected a number >= 0, found {weight}")
  if not 0.0 <= smoothing < 1.0:
    raise UserError(f"{where}.label_smoothing: expected a number in [0, 1), found {smoothing}")
  return Task(name, kind, labels, weight, smoothing, scheme)


def check_task_names(field: str, given, names: list[str]) -> None:
  """A UserError naming `field` for the first of `given` that is not a task (with the closest task, or all)."""
  for name in given:
    if name not in names:
      hint = difflib.get_close_matches(name, names, n=1)
      raise UserError(f"{field}: unknown task {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint
                                                           else f"; tasks are {names}"))


def chosen_tasks(config) -> list[str]:
  """`config.train.tasks`: the tasks to train and evaluate (empty: all of `config.tasks`)."""
  names, chosen = list(config.tasks.keys()), list(config.train.get("tasks", ()))
  check_task_names("config.train.tasks", chosen, names)
  return chosen or names


def layout_from_config(config) -> Layout:
  """The layout of `config.tasks`, ordered as `config.data.label_order` (the order of `labels` in the table)."""
  names = list(config.tasks.keys())
  order = list(config.data.get("label_order") or names)
  check_task_names("config.data.label_order", order, names)
  if missing := [n for n in names if n not in order]:
    raise UserError(f"config.data.label_order: tasks {missing} are defined but have no position in `labels`")
  if len(set(order)) != len(order):
    raise UserError(f"config.data.label_order: a task is listed twice: {order}")
  return Layout(tuple(task_from_config(n, config.tasks[n]) for n in order))
