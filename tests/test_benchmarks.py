"""The benchmarks run end to end on tiny settings (random-tiny encoder, 2 windows of 2 steps, batch 4), so they cannot
rot: every variant reports positive, finite figures, a real-token fraction in (0, 1], and the JAX variants compile
only in the warm-up."""

import json
import math
import sys

import numpy as np
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
  args = throughput.parse_args([*TINY, f"--data_root={shared_data}", "--num_texts=64", f"--output={out}",
                                "--labels=all"])
  _, table = throughput.run(args)
  results = check_report(out, throughput.VARIANTS)["results"]
  assert all(name in table for name in throughput.VARIANTS)
  # The same batches everywhere: padding to the longest text wastes least, one fixed length most; with every text
  # labelled for all three tasks, the per-task passes encode each text three times.
  fraction = {name: r["real_token_fraction"] for name, r in results.items()}
  assert fraction["pytorch"] >= fraction["mtl_jax"] > fraction["fixed_length"]
  assert len({r["real_tokens_per_window"] for r in results.values()}) == 1
  processed = {name: r["processed_tokens_per_window"] for name, r in results.items()}
  assert processed["per_task_pass"] == 3 * processed["mtl_jax"]


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
