"""Sharding: partition rules, meshes of 8 CPU devices against 1 device, two processes against one, and gradient
accumulation against the full batch."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from runs import REPO, latest_params, read_history, smoke

from mtl_jax import checkpoint
from mtl_jax.distributed import cpu_devices_env
from mtl_jax.sharding import DEFAULT_RULES, batch_sharding, fit_spec, make_mesh, process_rows, spec_for
from mtl_jax.train import train_and_evaluate

MESHES = [(8, 1, 1), (2, 4, 1), (2, 2, 2), (1, 1, 8)]
# Per-device shard shapes of a few random-tiny parameters (hidden 32, FFN 64, vocab 30522, 9 classes), by hand from
# the rules: fsdp splits rows of column-parallel matrices, model their columns; a vocabulary of 30522 is not split 4
# or 8 ways (it does not divide).
SHARDS = {
    (8, 1, 1): {"query": (32, 32), "output": (64, 32), "word": (30522, 32), "norm": (32,), "head": (32, 9)},
    (2, 4, 1): {"query": (8, 32), "output": (64, 8), "word": (30522, 8), "norm": (32,), "head": (8, 9)},
    (2, 2, 2): {"query": (16, 16), "output": (32, 16), "word": (15261, 16), "norm": (32,), "head": (16, 9)},
    (1, 1, 8): {"query": (32, 4), "output": (8, 32), "word": (30522, 32), "norm": (32,), "head": (32, 9)},
}
PARAMS = {"query": "encoder/layer_0/query/kernel", "output": "encoder/layer_1/output/kernel",
          "word": "encoder/embeddings/word/embedding", "norm": "encoder/layer_0/output_norm/scale",
          "head": "heads/classification/kernel"}

MESH_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import jax
from runs import read_history, smoke
from mtl_jax import checkpoint
from mtl_jax import checkpoint
from mtl_jax.sharding import path_name
from mtl_jax.train import train_and_evaluate

shards, real_save = {{}}, checkpoint.save
def save(mngr, step, arrays, meta, tokenizer):  # the trained params as they sit on the devices
  if "opt_state" in arrays:
    shards.update({{path_name(p): x.sharding.shard_shape(x.shape)
                   for p, x in jax.tree_util.tree_flatten_with_path(arrays["params"])[0]}})
  real_save(mngr, step, arrays, meta, tokenizer)
checkpoint.save = save

out = {{}}
for d, f, m in {meshes!r}:
  workdir = f"{root}/{{d}}_{{f}}_{{m}}"
  train_and_evaluate(smoke({table!r}, **{{**{overrides!r}, "mesh.data": d, "mesh.fsdp": f, "mesh.model": m}}), workdir)
  out[f"{{d}},{{f}},{{m}}"] = {{"history": read_history(workdir, timings=False), "shards": dict(shards)}}
print(json.dumps(out))
"""
# packed batches of 8 rows on every mesh (without a budget the rows are rounded up to a multiple of the batch shards)
OVERRIDES = {"train.steps": 5, "train.log_every": 1, "train.eval_every": 5, "data.tokens_per_batch": 8 * 64}


def losses(history):
  return np.array([[e["train/loss"], *(e[f"train/{t}/loss"] for t in ("sentiment", "urgency", "topic"))]
                   for e in history if "train/loss" in e])


def test_default_rules_name_every_matrix_and_fit_the_mesh():
  mesh = make_mesh({"data": 1, "fsdp": 1, "model": 1})
  assert spec_for("encoder/layer_3/value/kernel", DEFAULT_RULES) == P("fsdp", "model")
  assert spec_for("1/0/mu/encoder/layer_3/attention_output/kernel", DEFAULT_RULES) == P("model", "fsdp")
  assert spec_for("encoder/layer_3/attention_norm/scale", DEFAULT_RULES) == P()
  assert fit_spec(P("model", "fsdp"), (30522, 32), mesh) == P("model", "fsdp")
  assert fit_spec(P("fsdp", "model"), (32,), mesh) == P("fsdp")


def test_one_process_holds_every_row():
  assert process_rows(batch_sharding(make_mesh({"data": -1})), 16) == slice(0, 16)


def test_meshes_of_8_devices_train_as_one_device_with_params_sharded_by_the_rules(table, tmp_path):
  train_and_evaluate(smoke(table, **OVERRIDES), str(tmp_path / "one"))
  one = read_history(str(tmp_path / "one"), timings=False)
  script = MESH_SCRIPT.format(tests=os.path.dirname(__file__), meshes=MESHES, root=str(tmp_path), table=table,
                              overrides=OVERRIDES)
  out = subprocess.run([sys.executable, "-c", script], env=cpu_devices_env(8), capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 0, out.stderr[-3000:]
  runs = json.loads(out.stdout.strip().splitlines()[-1])
  for mesh in MESHES:
    run = runs[",".join(map(str, mesh))]
    np.testing.assert_allclose(losses(run["history"]), losses(one), atol=2e-5, err_msg=str(mesh))
    evals = [(e["eval/mean/loss"], e["eval/mean/accuracy"]) for h in (run["history"], one) for e in h
             if "eval/mean/loss" in e]
    np.testing.assert_allclose(evals[0], evals[1], atol=2e-5, err_msg=str(mesh))
    assert {k: tuple(run["shards"][PARAMS[k]]) for k in PARAMS} == SHARDS[mesh], mesh


def test_gradient_accumulation_equals_the_full_batch(table, tmp_path):
  """4 micro-batches of 4 rows = one batch of 16 (no dropout, so only float rounding differs)."""
  overrides = {"train.steps": 6, "train.log_every": 1, "train.eval_every": 6, "encoder.dropout": 0.0,
               "encoder.head_dropout": 0.0}
  full = train_and_evaluate(smoke(table, **overrides), str(tmp_path / "full"))
  micro = train_and_evaluate(smoke(table, **overrides, **{"train.grad_accumulation": 4}), str(tmp_path / "micro"))
  histories = [read_history(str(tmp_path / name)) for name in ("micro", "full")]
  np.testing.assert_allclose(losses(histories[0]), losses(histories[1]), rtol=1e-5, atol=1e-6)
  assert micro["eval/mean/loss"] == pytest.approx(full["eval/mean/loss"], abs=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), latest_params(str(tmp_path / "micro")),
               latest_params(str(tmp_path / "full")))


def launch(n_processes, devices, workdir, table, steps, port):
  """`launch/local.sh` with `n_processes` (or one plain process when 1), each simulating `devices` CPU devices."""
  args = ["--config=configs/three_task.py:smoke", f"--workdir={workdir}", f"--config.data.train={table}",
          "--config.data.validation=0.25", f"--config.train.steps={steps}", "--config.train.eval_every=4",
          "--config.train.log_every=2"]
  if n_processes == 1:
    command, env = [sys.executable, "-m", "mtl_jax.main", *args], cpu_devices_env(devices)
  else:
    command = ["bash", "launch/local.sh", str(n_processes), *args]
    env = {**os.environ, "DEVICES_PER_PROCESS": str(devices), "PORT": str(port), "PYTHON": sys.executable}
  env["MTL_JAX_CACHE"] = f"{workdir}_cache"  # each run's own token cache: several processes build theirs in shares
  out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]


def assert_close_runs(a, b):
  ha, hb = read_history(a, timings=False), read_history(b, timings=False)
  assert [sorted(e) for e in ha] == [sorted(e) for e in hb]
  for ea, eb in zip(ha, hb):
    np.testing.assert_allclose([v for _, v in sorted(ea.items())], [v for _, v in sorted(eb.items())], atol=1e-5)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5), latest_params(a), latest_params(b))


def test_two_processes_train_as_one_and_their_checkpoint_resumes_on_one(table, tmp_path):
  two, one = str(tmp_path / "two"), str(tmp_path / "one")
  launch(2, 2, two, table, steps=8, port=12000 + os.getpid() % 20000)
  launch(1, 4, one, table, steps=8, port=None)
  assert_close_runs(two, one)
  assert os.path.exists(os.path.join(two, "process_1.log"))  # process 1 logged there; only process 0 wrote metrics
  # The two-process checkpoint continues in one process (4 devices), as the one-process run does.
  launch(1, 4, two, table, steps=12, port=None)
  launch(1, 4, one, table, steps=12, port=None)
  assert_close_runs(two, one)


def test_bf16_compute_keeps_float32_master_params_and_tracks_float32(table, tmp_path):
  overrides = {"train.steps": 6, "train.log_every": 1, "train.eval_every": 6, "train.checkpoint_every": 6}
  train_and_evaluate(smoke(table, **overrides), str(tmp_path / "f32"))
  train_and_evaluate(smoke(table, **overrides, **{"encoder.dtype": "bfloat16", "encoder.remat": True}),
                     str(tmp_path / "bf16"))
  mngr = checkpoint.manager(str(tmp_path / "bf16" / checkpoint.LATEST), create=False)
  saved = checkpoint.restore_arrays(mngr, 6, {"params": None, "opt_state": None})
  assert {x.dtype for x in jax.tree.leaves(saved["params"])} == {np.dtype("float32")}
  assert {x.dtype for x in jax.tree.leaves(saved["opt_state"]) if x.ndim} == {np.dtype("float32")}
  bf16, f32 = (losses(read_history(str(tmp_path / name))) for name in ("bf16", "f32"))
  np.testing.assert_allclose(bf16, f32, rtol=2e-2)
  assert not np.array_equal(bf16, f32)  # bf16 really computed in bf16
