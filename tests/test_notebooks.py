"""Every notebook in notebooks/ runs top to bottom in a fresh kernel without a cell error (nbclient), and what it
computed is sound: a notebook writes a JSON summary to $MTL_JAX_NOTEBOOK_RESULTS, which is checked here.

The notebooks run at the same time, each in its own kernel: their time goes to XLA compiling the tiny encoder's
steps, mostly one core each, so on two cores the pair takes about as long as the longer one. Each kernel is this
interpreter (a "python3" kernelspec written for sys.executable and found first through JUPYTER_PATH, so a user-level
kernelspec cannot substitute another Python) and inherits this environment: the persistent XLA compilation cache
conftest set up (the comparison notebook's joint run, trained last, has the quickstart's settings and finds its
compiled step there), a TMPDIR under tmp_path for the notebooks' workdirs, and LLVM optimization level 1, which
compiles these steps faster than the default level 2 at about the same step time.
"""

import asyncio
import glob
import json
import os
import sys
import time

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

if REPO not in sys.path:  # `configs` lives at the repository root, outside the package
  sys.path.insert(0, REPO)

from configs import three_task  # noqa: E402

NOTEBOOKS = {os.path.splitext(os.path.basename(p))[0]: p
             for p in sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))}
CELL_TIMEOUT_S = 300
_config = three_task.get_config()
LABELS = {name: tuple(_config.tasks[name].labels) for name in _config.data.label_order}  # the bundled table's tasks


def kernel_env(root) -> dict[str, str]:
  """A "python3" kernelspec for this interpreter under `root`; the kernels' environment (JUPYTER_PATH included)."""
  spec_dir = root / "jupyter" / "kernels" / "python3"
  spec_dir.mkdir(parents=True)
  spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
          "display_name": "Python 3 (ipykernel)", "language": "python"}
  (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
  (root / "results").mkdir()
  (root / "tmp").mkdir()
  # the notebooks train the real MiniLM for a while: LLVM's cheaper passes pay off there (conftest.py sets 0)
  xla_flags = os.environ.get("XLA_FLAGS", "").replace("--xla_backend_optimization_level=0", "")
  xla_flags = f"{xla_flags} --xla_backend_optimization_level=1".strip()
  return {**os.environ, "JUPYTER_PATH": str(root / "jupyter"), "MTL_JAX_NOTEBOOK_RESULTS": str(root / "results"),
          "TMPDIR": str(root / "tmp"), "XLA_FLAGS": xla_flags}


async def execute_all(paths: dict[str, str], env: dict[str, str]) -> dict[str, tuple[Exception | None, float]]:
  """{name: (the error a cell raised or None, seconds)}, every notebook executed at once in its own directory."""
  async def execute(path):
    nb = nbformat.read(path, as_version=4)
    if any(cell.get("outputs") for cell in nb.cells):
      return AssertionError(f"{path}: save notebooks without outputs"), 0.0
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(path)}})
    start = time.perf_counter()
    try:
      await client.async_execute(env=env)
    except Exception as e:  # noqa: BLE001 - CellExecutionError names the cell and carries its traceback
      return e, time.perf_counter() - start
    return None, time.perf_counter() - start

  outcomes = await asyncio.gather(*(execute(p) for p in paths.values()))
  return dict(zip(paths, outcomes))


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> tuple[dict[str, tuple[Exception | None, float]], str]:
  env = kernel_env(tmp_path_factory.mktemp("notebooks"))
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("JUPYTER_PATH", env["JUPYTER_PATH"])  # read here, by the kernel managers' kernelspec lookup
    return asyncio.run(execute_all(NOTEBOOKS, env)), env["MTL_JAX_NOTEBOOK_RESULTS"]


def check_quickstart(summary: dict) -> None:
  assert set(summary["classification"]) == set(LABELS)
  assert all(0 <= acc <= 1 for acc in summary["classification"].values()), summary["classification"]
  assert summary["predictions"]
  for prediction in summary["predictions"]:
    assert all(prediction[task] in labels for task, labels in LABELS.items()), prediction
  assert set(summary["tagging"]) == {"pos", "chunk"}
  assert all(0 <= score <= 1 for score in summary["tagging"].values()), summary["tagging"]
  pos, chunk = summary["tagged"]["pos"], summary["tagged"]["chunk"]
  assert pos["words"] and chunk["words"] == pos["words"]
  assert len(pos["tags"]) == len(chunk["tags"]) == len(pos["words"])
  for span in chunk["spans"]:
    assert 0 <= span["start"] < span["end"] <= len(chunk["words"]), span
    assert span["text"] == " ".join(chunk["words"][span["start"]:span["end"]]), span


def check_multitask_vs_single(summary: dict) -> None:
  assert set(summary["tasks"]) == set(LABELS)
  for task, r in summary["tasks"].items():
    assert 0 <= r["joint"] <= 1 and 0 <= r["single"] <= 1, (task, r)
    assert r["single_evaluated"] == [task], (task, r)  # config.train.tasks: the single run scored `task` alone
    assert r["joint_s"] > 0 and r["single_s"] > 0, (task, r)


CHECKS = {"quickstart": check_quickstart, "multitask_vs_single": check_multitask_vs_single}


def test_notebooks_found():
  assert set(NOTEBOOKS) >= set(CHECKS)


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_runs(name, executed):
  outcomes, results = executed
  error, seconds = outcomes[name]
  print(f"{name}: {seconds:.1f} s")
  if error is not None:
    raise error
  if name in CHECKS:
    with open(os.path.join(results, f"{name}.json"), encoding="utf-8") as f:
      summary = json.load(f)
    assert os.path.samefile(summary["python"], sys.executable)  # the kernel ran this interpreter
    CHECKS[name](summary)
