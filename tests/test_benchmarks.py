"""The benchmarks run end to end on tiny settings (random-tiny encoder, 2 windows of 2 steps, batch 4), so they cannot
rot: every variant reports positive, finite figures, a real-token fraction in (0, 1], and the JAX variants compile
only in the warm-up; every training variant processes the same texts, and computes the positions its batching
implies."""

import json
import math
import sys

import numpy as np
import pytest
from conftest import REPO

from mtl_jax.input_pipeline import Encoded

if REPO not in sys.path:  # `benchmarks` and `configs` live at the repository root, outside the package
  sys.path.insert(0, REPO)

from benchmarks import predict, throughput  # noqa: E402

TINY = ["--encoder=random-tiny", "--windows=2", "--steps=2", "--batch_size=4", "--threads=1"]
FIGURES = ("examples_per_s", "real_tokens_per_s", "median_window_s")


def check_report(path, variants) -> dict:
  """The JSON report: machine, versions, settings, and every variant with sound figures."""
  with open(path, encoding="utf-8") as f:
    report = json.load(f)
  assert report["machine"]["cpu_count"] >= 1 and report["versions"]["jax"] and report["versions"]["torch"]
  assert list(report["results"]) == list(variants)
  for name, r in report["results"].items():
    for key in FIGURES:
      assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, (name, key, r[key])
    assert 0 < r["real_token_fraction"] <= 1, (name, r["real_token_fraction"])
    assert len(r["window_s"]) == 2
    if not name.startswith("pytorch"):
      assert r["compiles"] >= 1 and r["compiles_timed"] == 0, (name, r["compiles"], r["compiles_timed"])
  return report


def test_throughput_measures_every_variant(shared_data, tmp_path):
  out = tmp_path / "throughput.json"
  args = throughput.parse_args([*TINY, "--steps=1", f"--data_root={shared_data}", "--num_texts=64",
                                f"--output={out}", "--labels=all"])  # one packed batch: few shapes to compile
  _, table = throughput.run(args)
  report = check_report(out, throughput.VARIANTS)
  results, budget = report["results"], report["settings"]["token_budget"]
  packing = report["settings"]["packing"]
  assert all(name in table for name in throughput.VARIANTS) and "vs per_task_pass" in table and "paired" in table
  # Every variant processes the same texts in a window.
  assert len({(r["examples_per_window"], r["real_tokens_per_window"]) for r in results.values()}) == 1
  # mtl_jax's batches: R rows of the longest bucket holding packed rows of 32, 64 or 128, one compile;
  # token_budget's: (B_L, L) within the budget, one compile per shape.
  assert packing["lengths"] == [32, 64, 128]
  assert all(size == packing["rows"] and length in packing["lengths"] for _, size, length in packing["window_batches"])
  assert results["mtl_jax"]["compiles"] == 1
  for rows, size, length in budget["window_batches"]:
    assert rows <= size == budget["batch_sizes"][str(length)] and size * length <= budget["tokens_per_batch"]
  assert results["token_budget"]["compiles"] == len({length for _, _, length in budget["window_batches"]})
  # What each variant computes, by hand from the batches: packed and token-budget batches their (R or B_L, L);
  # fixed rows (4 rows, the bucket of the longest text; per task: each text three times, rows rounded up to a
  # multiple of 4 / 4 = 1; 128); PyTorch (the rows, the longest).
  fixed = report["settings"]["fixed_rows_batches"]
  bucket = lambda n: min(b for b in report["settings"]["length_buckets"] if b >= n)
  expected = {"mtl_jax": sum(size * 128 for _, size, _ in packing["window_batches"]),
              "token_budget": sum(size * length for _, size, length in budget["window_batches"]),
              "bucketed_fixed_rows": sum(4 * bucket(longest) for _, longest in fixed),
              "per_task_pass": sum(3 * rows * bucket(longest) for rows, longest in fixed),
              "fixed_length": len(fixed) * 4 * 128, "pytorch": sum(rows * longest for rows, longest in fixed)}
  assert {name: r["processed_tokens_per_window"] for name, r in results.items()} == expected
  # Over an epoch of the pool: packing and token budgets pad least, one fixed length most.
  epoch = {name: r["epoch_real_token_fraction"] for name, r in results.items()}
  assert min(epoch["mtl_jax"], epoch["token_budget"]) > epoch["bucketed_fixed_rows"] > \
      epoch["fixed_length"]
  for name, r in results.items():
    assert r["vs_pytorch"] == pytest.approx(r["real_tokens_per_s"] / results["pytorch"]["real_tokens_per_s"])
    # per round: the same texts, so the ratio of the window times is the examples/s ratio
    assert r["paired_vs_pytorch"] == pytest.approx(np.median(np.divide(results["pytorch"]["window_s"], r["window_s"])))


def test_the_default_token_budget_gives_batch_size_examples_per_batch_on_average():
  lengths = np.clip(np.random.default_rng(0).lognormal(3.1, 0.6, 3000).astype(int), 3, 128)
  data = Encoded([np.ones(n, np.int32) for n in lengths], np.zeros((3000, 1), np.int32), np.ones((3000, 1), np.float32))
  mean = lambda budget: 3000 // 32 * 32 / throughput.budget_order(data, 32, 0, throughput.FINE_BUCKETS, budget).per_epoch
  budget = throughput.default_budget(data, 32, 0, throughput.FINE_BUCKETS)
  assert budget % 8 == 0 and mean(budget) >= 32 > mean(budget - 8)
  assert throughput.default_budget(data, 2, 0, throughput.FINE_BUCKETS) == 128  # at least the longest bucket


def test_per_task_sub_batches_split_a_mixed_batch_by_task():
  labels = np.array([[2, -1, -1], [-1, 1, -1], [0, -1, -1], [-1, -1, 3], [1, -1, -1]], np.int32)
  data = Encoded([np.arange(n, dtype=np.int32) + 1 for n in (5, 3, 7, 4, 2)], labels, np.ones((5, 3), np.float32))
  idx = np.arange(5)
  sub = throughput.task_sub_batches(data, idx, batch_size=8, buckets=(4, 8), pad_id=0)
  assert [b["input_ids"].shape for b in sub] == [(4, 8), (2, 4), (2, 4)]  # rows rounded up to a multiple of 8 / 4
  assert [b["attention_mask"].sum() for b in sub] == [5 + 7 + 2, 3, 4]  # every text once, in its task's pass
  for t, b in enumerate(sub):
    scored = (b["labels"] >= 0) & (b["weights"] > 0)
    assert scored[:, t].sum() == (labels[:, t] >= 0).sum() and not np.delete(scored, t, axis=1).any()


def test_predict_measures_every_variant_and_both_sides_agree(shared_data, tmp_path):
  out = tmp_path / "predict.json"
  _, table = predict.run(predict.parse_args([*TINY, f"--data_root={shared_data}", f"--output={out}"]))
  results = check_report(out, predict.VARIANTS)["results"]
  assert all(name in table for name in predict.VARIANTS)
  for name in ("pytorch", "pytorch_sorted"):
    assert results[name]["max_prob_diff"] < 1e-4, (name, results[name]["max_prob_diff"])


def test_step_profile_counts_at_least_the_dense_layers_flops_and_sorts_every_kind_of_op(tmp_path):
  """XLA's FLOP count of a train step is at least 6 x (encoder kernel weights) x tokens: forward 2, backward 4 per
  weight and token (attention, heads and the optimizer come on top). The per-op profiles find time in every kind of
  op (the tiny encoder has dropout) on both sides, and the op names from the compiled HLO match the profiler's
  events: every dense layer's three matmuls are among the timed ones."""
  import jax

  from benchmarks import common, step_profile
  out = tmp_path / "profile.json"
  report, table = step_profile.run(step_profile.parse_args(
      ["--encoder=random-tiny", "--buckets=16", "--tokens_per_batch=64", "--repeats=1", "--matmul=64",
       "--profile_steps=2", f"--output={out}"]))
  assert list(json.loads(out.read_text())["shapes"]) == ["4x16"] and "GFLOP/s" in table
  model = common.build_model(common.base_config("random-tiny", "float32", 4, 0))[0]
  kernels = [leaf.size for path, leaf in jax.tree_util.tree_leaves_with_path(model.init(jax.random.key(0))["encoder"])
             if path[-1].key == "kernel"]
  assert len(kernels) == 6 * model.encoder.config.num_layers  # q, k, v, attention output, two FFN matrices
  shape = report["shapes"]["4x16"]
  assert shape["gflop"] * 1e9 >= 6 * sum(kernels) * 4 * 16 * 0.99
  assert shape["step_s"] > 0 and shape["of_matmul"] > 0 and report["optimizer_update_s"] > 0
  assert shape["page_faults"] >= 0 and shape["kernel_s"] >= 0
  ops = report["op_profile"]
  assert ops["shape"] == "4x16" and "per-op profile" in table
  for side in ("mtl_jax", "pytorch"):
    assert all(ops[side]["seconds"][kind] > 0 for kind in step_profile.KINDS), (side, ops[side])
  # every dense layer's forward dot and its two backward dots ran as timed thunks (no timing ratio: CI is busy)
  assert ops["mtl_jax"]["matmul_ops"] >= 3 * len(kernels)
