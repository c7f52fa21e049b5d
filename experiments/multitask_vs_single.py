"""Multi-task vs single-task at equal total compute, and the loss weightings: one config, every variant through the
CLI, several seeds.

  python experiments/multitask_vs_single.py --config=configs/pos_chunk.py --workdir=runs/mvs_pos_chunk
  python experiments/multitask_vs_single.py --config=configs/airline.py --workdir=runs/mvs_airline \
      --override=--config.train.epochs=0.5

For each seed (`--seeds`), one after the other, each a `python -m mtl_jax.main` process in
`<workdir>/<variant>/seed<s>`: every task alone (`--config.train.tasks=(name,)`, static weighting) for the config's
epochs over its own corpus, then the tasks jointly with each of `--weightings` for the sum of the single runs' steps
(equal total compute: one joint model against one model per task). A finished run's figures are kept in its
`variant.json` and not run again, so an interrupted comparison resumes. Scores are the test split's (validation where
a config has no test split); nothing is chosen by them. Prints a markdown table (per variant: mean and standard
deviation over seeds of each task's main score, mean steps and wall time) and each joint run's difference to the
single runs per task, and writes them with the raw figures to `<workdir>/results.md` and `results.json`.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from sweep_recipe import load_config  # this folder is on sys.path when run as a script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(variant: str, config: str, workdir: str, overrides: list[str]) -> dict:
  """Trains one variant through the CLI (unless its variant.json says it is done); its figures."""
  done = os.path.join(workdir, "variant.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  start = time.perf_counter()
  subprocess.run([sys.executable, "-m", "mtl_jax.main", f"--config={config}", f"--workdir={workdir}", *overrides],
                 cwd=REPO, check=True)
  steps, scores = final_scores(workdir)
  row = {"variant": variant, "workdir": workdir, "overrides": overrides, "steps": steps,
         "seconds": time.perf_counter() - start, "scores": scores}
  with open(done, "w") as f:
    json.dump(row, f, indent=2)
  return row


def final_scores(workdir: str) -> tuple[int, dict[str, float]]:
  """(last step, the last test event's metrics, else the last evaluation's) of a run's metrics.jsonl."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    events = [json.loads(line) for line in f]
  scored = [e for e in events if any(k.startswith("test/") for k in e)] or [e for e in events
                                                                            if any(k.startswith("eval/") for k in e)]
  return events[-1]["step"], {k: v for k, v in scored[-1].items() if k != "step"}


def main_score(row: dict, task: str) -> float | None:
  """A task's main score in a run: test if the run has one, else validation."""
  for split in ("test", "eval"):
    if f"{split}/{task}/main" in row["scores"]:
      return row["scores"][f"{split}/{task}/main"]
  return None


def summary(rows: list[dict], tasks: list[str]) -> dict[str, dict]:
  """{variant: {"steps", "seconds", task: [scores over seeds]}} in the order the variants first ran."""
  out: dict[str, dict] = {}
  for r in rows:
    v = out.setdefault(r["variant"], {"steps": [], "seconds": [], **{t: [] for t in tasks}})
    v["steps"].append(r["steps"])
    v["seconds"].append(r["seconds"])
    for t in tasks:
      if (score := main_score(r, t)) is not None:
        v[t].append(score)
  return out


def table(rows: list[dict], tasks: list[str]) -> str:
  """Markdown: per variant, each task's main score (mean +- std over seeds), mean steps and wall time; then each
  joint variant's difference to the tasks alone, in points."""
  by_variant = summary(rows, tasks)
  cell = lambda xs: f"{np.mean(xs):.4f} ± {np.std(xs):.4f}" if xs else "—"
  head = ["variant", "seeds", "steps", *[f"{t} main" for t in tasks], "wall time"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, v in by_variant.items():
    lines.append(f"| {name} | {len(v['steps'])} | {np.mean(v['steps']):.0f} | "
                 + " | ".join(cell(v[t]) for t in tasks) + f" | {np.mean(v['seconds']) / 60:.1f} min |")
  alone = {t: by_variant[f"{t} alone"][t] for t in tasks if f"{t} alone" in by_variant}
  for name, v in by_variant.items():
    if name.startswith("joint"):
      diffs = [f"{t} {100 * (np.mean(v[t]) - np.mean(alone[t])):+.2f}" for t in tasks if v[t] and alone.get(t)]
      lines.append(f"\n{name} - alone (points): " + ", ".join(diffs))
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True, help="a corpus-per-task or table config, e.g. configs/pos_chunk.py")
  parser.add_argument("--workdir", required=True, help="one subdirectory per variant and seed goes here")
  parser.add_argument("--tasks", default="", help="the config's tasks, comma-separated (default: all)")
  parser.add_argument("--weightings", default="static", help="joint runs' loss weightings, comma-separated "
                      "(static, uncertainty, pcgrad)")
  parser.add_argument("--seeds", default="0,1,2", help="comma-separated")
  parser.add_argument("--override", action="append", default=[], help="a --config.x=y flag for every variant")
  args = parser.parse_args()

  tasks = args.tasks.split(",") if args.tasks else list(load_config(args.config).tasks)
  rows = []
  for seed in [int(s) for s in args.seeds.split(",")]:
    common = [*args.override, f"--config.seed={seed}"]
    singles = [run(f"{t} alone", args.config, os.path.join(args.workdir, f"single_{t}", f"seed{seed}"),
                   [*common, f"--config.train.tasks=('{t}',)"]) for t in tasks]
    steps = sum(r["steps"] for r in singles)
    rows += singles + [run(f"joint, {m}", args.config, os.path.join(args.workdir, f"joint_{m}", f"seed{seed}"),
                           [*common, f"--config.train.loss_weighting={m}", f"--config.train.steps={steps}"])
                       for m in args.weightings.split(",")]
  markdown = table(rows, tasks)
  print(markdown)
  with open(os.path.join(args.workdir, "results.md"), "w") as f:
    f.write(markdown + "\n")
  with open(os.path.join(args.workdir, "results.json"), "w") as f:
    json.dump({"config": args.config, "overrides": args.override, "rows": rows}, f, indent=2)


if __name__ == "__main__":
  main()
