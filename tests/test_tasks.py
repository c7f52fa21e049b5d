"""Task layout from the config: order, group sizes and offsets derived once; config mistakes named."""

import ml_collections
import pytest

from mtl_jax.errors import UserError
from mtl_jax.tasks import Layout, build_layout, layout_from_config


def config(order=("b", "a"), **task_b):
  c = ml_collections.ConfigDict()
  c.tasks = ml_collections.ConfigDict()
  c.tasks.a = dict(labels=("x", "y", "z"))
  c.tasks.b = {"num_classes": 2, "weight": 0.5, **task_b}
  c.data = ml_collections.ConfigDict({"train": "table.jsonl", "label_order": order})
  return c


def test_layout_follows_label_order():
  layout = layout_from_config(config())
  assert layout.names == ("b", "a")
  assert layout.group_sizes == (2, 3) and layout.offsets == (0, 2) and layout.total("classification") == 5
  assert layout.tasks[0].labels == ("0", "1") and layout.tasks[0].weight == 0.5
  assert Layout.from_dict(layout.to_dict()) == layout


def test_label_order_is_a_tables_only():
  """A corpus per task keeps config.tasks' order, whatever data.label_order holds (it orders a table's columns)."""
  corpus = config(order=("b",))
  corpus.data.train = ""
  assert build_layout(corpus, ["a", "b"], {}).names == ("a", "b")


@pytest.mark.parametrize("task_b,message", [
    ({"num_classes": None}, r"config.tasks.b: give `labels` \(class names\) or `num_classes`"),
    ({"num_classes": 1}, r"config.tasks.b: a classification task needs at least 2 labels, found 1"),
])
def test_classes_are_required(task_b, message):
  """What the layout checks itself: a task's classes (from the config or its data); the config's other mistakes are
  schema.validate's (tests/test_schema.py)."""
  with pytest.raises(UserError, match=message):
    layout_from_config(config(**task_b))
