"""Task layout from the config: order, group sizes and offsets derived once; config mistakes named."""

import ml_collections
import pytest

from mtl_jax.errors import UserError
from mtl_jax.tasks import Layout, layout_from_config


def config(order=("b", "a"), **task_b):
  c = ml_collections.ConfigDict()
  c.tasks = ml_collections.ConfigDict()
  c.tasks.a = dict(labels=("x", "y", "z"))
  c.tasks.b = dict(num_classes=2, weight=0.5, **task_b)
  c.data = ml_collections.ConfigDict({"label_order": order})
  return c


def test_layout_follows_label_order():
  layout = layout_from_config(config())
  assert layout.names == ("b", "a")
  assert layout.group_sizes == (2, 3) and layout.offsets == (0, 2) and layout.total("classification") == 5
  assert layout.tasks[0].labels == ("0", "1") and layout.tasks[0].weight == 0.5
  assert Layout.from_dict(layout.to_dict()) == layout


@pytest.mark.parametrize("order,task_b,message", [
    (("b", "c"), {}, r"label_order: unknown task 'c'"),
    (("b",), {}, r"tasks \['a'\] are defined but have no position"),
    (("b", "a", "a"), {}, r"listed twice"),
    (("b", "a"), {"lables": ("p", "q")}, r"config.tasks.b.lables: no such task field \(did you mean 'labels'\?\)"),
    (("b", "a"), {"kind": "regression"}, r"config.tasks.b.kind: expected one of"),
    (("b", "a"), {"labels": ("p", "q", "r")}, r"num_classes=2 but 3 labels"),
    (("b", "a"), {"label_smoothing": 1.0}, r"label_smoothing: expected a number in \[0, 1\)"),
])
def test_config_mistakes_are_named(order, task_b, message):
  with pytest.raises(UserError, match=message):
    layout_from_config(config(order, **task_b))
