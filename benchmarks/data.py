"""Data at scale (issue 16): reading, tokenizing and caching a table as it grows, and what a run of a few steps costs
with a cold and a warm token cache.

  python benchmarks/data.py [--rows 10000,100000,1000000 --output benchmarks/results/data.json]

For each size a synthetic table is generated (not stored: three-task JSONL rows of 8-40 random words, as
`configs/three_task.py` reads them) in a temporary folder (100 rows held out for validation at every size, so runs
differ in their training rows only), then:
  - read + tokenize: `data.read_table` and `input_pipeline.encode_table` in this process (rows/s each, median of
    `--repeats`; sizes above `--in_process_max` rows are not read whole here, only by the runs), with the packaged
    MiniLM's tokenizer;
  - two runs of `python -m mtl_jax.main --config=configs/three_task.py:smoke` on that table for `--steps` steps, with
    one new cache folder (MTL_JAX_CACHE: the token cache and compiled steps): cold (the run reads, tokenizes and
    writes the cache, and compiles) and warm (it maps the entry and loads the compiled steps); `data_s` is the run's
    own "ready in" time for its data (read, tokenize and cache, or map);
  - with `--processes N` (N > 1): the cold run again as N processes on this machine (a coordinator on 127.0.0.1, one
    CPU device each), which read and tokenize a share of the table each (mtl_jax/token_cache.py): process 0's data
    time, first step and peak RSS. For each: seconds from the start of the process to its first logged training step (read from
    metrics.jsonl as it appears), the whole run's wall time, and the child's peak RSS (`os.wait4`'s rusage, MiB);
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from mtl_jax import data, distributed, encoder, input_pipeline  # noqa: E402
from mtl_jax.tasks import Layout, Task  # noqa: E402
from mtl_jax.tokenizer import load_tokenizer  # noqa: E402

LAYOUT = Layout((Task("sentiment", "classification", ("negative", "neutral", "positive")),
                 Task("urgency", "classification", ("low", "high")),
                 Task("topic", "classification", ("billing", "technical", "shipping", "account"))))
VALIDATION_ROWS = 100  # held out of every table: the runs differ in their training rows only
VOCAB = ("parcel refund invoice login password app crash delivery late broken thanks great awful urgent today "
         "account profile charge card order tracking number support please help never arrived again").split()


def write_table(path: str, rows: int, seed: int = 0) -> None:
  """`rows` JSONL rows of 8-40 random words with a random label per task (a tenth without an urgency label)."""
  rng = np.random.default_rng(seed)
  lengths, words = rng.integers(8, 41, rows), rng.integers(len(VOCAB), size=(rows, 40))
  labels = np.stack([rng.integers(t.num_classes, size=rows) for t in LAYOUT.tasks], 1)
  with open(path, "w", encoding="utf-8") as f:
    for i in range(rows):
      row_labels = [int(x) for x in labels[i]]
      if i % 10 == 3:
        row_labels[1] = None
      f.write(json.dumps({"text": " ".join(VOCAB[w] for w in words[i, :lengths[i]]), "labels": row_labels}) + "\n")


def median_time(fn, repeats: int) -> tuple[float, object]:
  """The median wall time of `repeats` calls, and the last result."""
  times, result = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times), result


def run_command(table: str, workdir: str, steps: int) -> list[str]:
  return [sys.executable, "-m", "mtl_jax.main", "--config=configs/three_task.py:smoke", f"--workdir={workdir}",
          f"--config.data.train={table}", f"--config.data.validation={VALIDATION_ROWS}", f"--config.train.steps={steps}",
          "--config.train.log_every=1", f"--config.train.eval_every={steps}", "--config.train.tensorboard=False"]


def first_step_run(command: list[str], workdir: str, cache: str, processes: int = 1) -> dict:
  """`command` (a training run) in `processes` child processes whose caches (tokens, compiled steps) are in `cache`:
  process 0's seconds to its data and to its first logged step, the wall time, process 0's peak RSS."""
  metrics, log, first = os.path.join(workdir, "metrics.jsonl"), os.path.join(workdir + ".log"), None
  env = {**os.environ, "MTL_JAX_CACHE": cache, "JAX_COMPILATION_CACHE_DIR": ""}
  if processes > 1:
    port = 20000 + os.getpid() % 20000
    env.update(distributed.cpu_devices_env(1))
    commands = [[*command, f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}",
                 f"--process_id={i}"] for i in range(processes)]
  else:
    commands = [command]
  start = time.perf_counter()
  with open(log, "wb") as err:  # a file, not a pipe: the child's progress bars cannot fill it and block
    children = [subprocess.Popen(c, cwd=common.REPO, env=env, stdout=err if i == 0 else subprocess.DEVNULL,
                                 stderr=err if i == 0 else subprocess.DEVNULL) for i, c in enumerate(commands)]
    while not (done := os.wait4(children[0].pid, os.WNOHANG))[0]:  # reaped here: its own rusage (peak RSS) is ours
      if first is None and os.path.exists(metrics) and '"train/loss"' in open(metrics).read():
        first = time.perf_counter() - start
      time.sleep(0.05)
    others = [c.wait() for c in children[1:]]
  wall = time.perf_counter() - start
  _, status, usage = done
  text = open(log).read()
  if os.waitstatus_to_exitcode(status) != 0 or any(others):
    raise RuntimeError(f"training run failed: {text[-2000:]}")
  ready = re.search(r"\(ready in ([\d.]+) s\)", text)
  return {"data_s": float(ready.group(1)) if ready else None,
          "first_step_s": round(first if first is not None else wall, 2), "wall_s": round(wall, 2),
          "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}  # KiB on Linux


def measure(rows: int, steps: int, repeats: int, tokenizer, in_process_max: int, processes: int) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    table, cache = os.path.join(tmp, "table.jsonl"), os.path.join(tmp, "cache")
    write_table(table, rows)
    result = {"rows": rows, "file_mib": round(os.path.getsize(table) / 2**20, 1)}
    if rows <= in_process_max:
      read_s, read = median_time(lambda: data.read_table(table, LAYOUT), repeats)
      encode_s, encoded = median_time(lambda: input_pipeline.encode_table(read, tokenizer, 64), repeats)
      result.update(read_rows_per_s=round(rows / read_s), tokenize_rows_per_s=round(rows / encode_s))
    for name in ("cold", "warm"):
      workdir = os.path.join(tmp, name)
      result[name] = first_step_run(run_command(table, workdir, steps), workdir, cache)
    result["warm_over_cold"] = round(result["warm"]["first_step_s"] / result["cold"]["first_step_s"], 3)
    if processes > 1:
      workdir = os.path.join(tmp, f"cold_{processes}")
      result[f"cold_{processes}_processes"] = first_step_run(run_command(table, workdir, steps), workdir,
                                                             os.path.join(tmp, f"cache_{processes}"), processes)
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rows", default="10000,100000", help="table sizes, comma-separated")
  parser.add_argument("--steps", type=int, default=2, help="training steps of each run")
  parser.add_argument("--repeats", type=int, default=3, help="read / tokenize repeats (median)")
  parser.add_argument("--in_process_max", type=int, default=100000, help="largest table read whole in this process")
  parser.add_argument("--processes", type=int, default=2, help="the cold run again as this many processes (1: not)")
  parser.add_argument("--output", default=os.path.join(common.REPO, "benchmarks", "results", "data.json"))
  args = parser.parse_args()
  tokenizer = load_tokenizer(encoder.resolve_encoder_dir(encoder.DEFAULT_PRETRAINED))
  results = [measure(int(n), args.steps, args.repeats, tokenizer, args.in_process_max, args.processes)
             for n in args.rows.split(",")]
  common.write_report({"benchmark": "data", "steps": args.steps, "machine": common.machine_info(),
                       "versions": common.versions(), "results": results}, args.output)
  number = lambda value: f"{value:,}" if isinstance(value, int) else "-"
  runs = ["cold", "warm", *(f"cold_{args.processes}_processes" for _ in [0] if args.processes > 1)]
  print(f"{'rows':>9} {'read rows/s':>12} {'tokenize rows/s':>16}  " + "  ".join(
      f"{name + ': data / first step (s), RSS (MiB)':>44}" for name in runs))
  for r in results:
    print(f"{r['rows']:>9,} {number(r.get('read_rows_per_s')):>12} {number(r.get('tokenize_rows_per_s')):>16}  " +
          "  ".join(f"{r[n]['data_s']:>23} / {r[n]['first_step_s']:>7}, {r[n]['peak_rss_mib']:>9}" for n in runs))
  print(f"wrote {args.output}")


if __name__ == "__main__":
  main()
