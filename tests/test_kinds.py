"""Task kinds: each registered kind implements the whole interface, and its device outputs are what numpy computes."""

import inspect

import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import kinds
from mtl_jax.kinds.base import Kind
from mtl_jax.tasks import Layout, Task

REQUIRED = [name for name, f in inspect.getmembers(Kind, inspect.isfunction) if name != "write_files"]


@pytest.mark.parametrize("kind", kinds.KINDS.values(), ids=kinds.NAMES)
def test_every_kind_implements_the_interface(kind):
  missing = [name for name in REQUIRED if getattr(type(kind), name) is getattr(Kind, name)]
  assert not missing, f"{kind.name} leaves {missing} to the base class"
  assert kind.name and kind.metric_names and set(kind.shown) <= set(kind.metric_names)
  assert kind.salt not in [k.salt for k in kinds.KINDS.values() if k is not kind]  # its own dropout stream


def test_outputs_are_softmax_per_group_and_argmax_per_task():
  rng = np.random.default_rng(0)
  groups = [rng.normal(size=(4, 7, k)).astype(np.float32) for k in (3, 2)]
  probs = np.asarray(kinds.KINDS["classification"].outputs([jnp.asarray(g[:, 0]) for g in groups]))
  softmax = lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)
  np.testing.assert_allclose(probs, np.concatenate([softmax(g[:, 0]) for g in groups], -1), rtol=1e-5, atol=1e-7)
  tags = np.asarray(kinds.KINDS["tagging"].outputs([jnp.asarray(g) for g in groups]))
  np.testing.assert_array_equal(tags, np.stack([g.argmax(-1) for g in groups], -1))


def test_task_output_is_the_tasks_share_of_its_kinds_store():
  layout = Layout((Task("a", "classification", ("x", "y")), Task("p", "tagging", ("N", "V", "D")),
                   Task("b", "classification", ("u", "v", "w")), Task("q", "tagging", ("B", "I"))))
  assert kinds.of_layout(layout) == (kinds.KINDS["classification"], kinds.KINDS["tagging"])
  probs = np.arange(10, dtype=np.float32).reshape(2, 5)
  np.testing.assert_array_equal(kinds.KINDS["classification"].task_output(probs, layout, 2), probs[:, 2:5])
  words = [np.array([[0, 1], [2, 0]]), np.array([[1, 1]])]  # per example: [n_words, n_tagging_tasks]
  got = kinds.KINDS["tagging"].task_output(words, layout, 3)
  assert [list(g) for g in got] == [[1, 0], [1]]
