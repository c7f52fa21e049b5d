"""Multi-task vs single-task at equal steps, and the loss weightings: one config, every variant through the CLI.

  python experiments/multitask_vs_single.py --config=configs/pos_chunk.py --workdir=runs/mvs_pos_chunk
  python experiments/multitask_vs_single.py --config=configs/airline.py --workdir=runs/mvs_airline \
      --override=--config.train.epochs=0.5

Runs, one after the other (each a `python -m mtl_jax.main` process in `<workdir>/<variant>`): the tasks jointly with
each of `--weightings`, then each task alone (`--config.train.tasks=(name,)`, static weighting) for as many steps
as the joint runs took (equal compute), and with `--equal_data` also for the config's epochs over the task's own
corpus alone (the examples of that task the joint run saw, when corpora are sampled in proportion). A finished
variant's figures are kept in `<variant>/variant.json` and not run again. Prints a markdown table of the test scores
(validation where a config has no test split) with wall times, and writes it with the raw figures to
`<workdir>/results.md` and `results.json`.
"""

import argparse
import json
import os
import subprocess
import sys
import time

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


def task_names(scores: dict[str, float]) -> list[str]:
  return sorted({k.split("/")[1] for k in scores if k.split("/")[1] not in ("mean", "std")})


def table(rows: list[dict], tasks: list[str]) -> str:
  """Markdown: one row per variant, each task's main score (and macro F1 for text tasks), wall time."""
  split = rows[0]["split"]
  head = ["variant", "steps", *[f"{t} {split} main" for t in tasks], "wall time"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = [f"{r['scores'][f'{split}/{t}/main']:.4f}" if f"{split}/{t}/main" in r["scores"] else "—" for t in tasks]
    lines.append(f"| {r['variant']} | {r['steps']} | " + " | ".join(cells) + f" | {r['seconds'] / 60:.1f} min |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True, help="a corpus-per-task or table config, e.g. configs/pos_chunk.py")
  parser.add_argument("--workdir", required=True, help="one subdirectory per variant goes here")
  parser.add_argument("--weightings", default="static,uncertainty,pcgrad", help="joint runs, comma-separated")
  parser.add_argument("--override", action="append", default=[], help="a --config.x=y flag for every variant")
  parser.add_argument("--equal_data", action="store_true", help="also each task alone for the config's epochs")
  args = parser.parse_args()

  rows = [run(f"joint, {method}", args.config, os.path.join(args.workdir, f"joint_{method}"),
              [*args.override, f"--config.train.loss_weighting={method}"]) for method in args.weightings.split(",")]
  tasks = task_names(rows[0]["scores"])
  for task in tasks:
    alone = [*args.override, f"--config.train.tasks=('{task}',)"]
    rows.append(run(f"{task} alone, equal steps", args.config, os.path.join(args.workdir, f"single_{task}"),
                    [*alone, f"--config.train.steps={rows[0]['steps']}"]))
    if args.equal_data:
      rows.append(run(f"{task} alone, its data once", args.config,
                      os.path.join(args.workdir, f"single_{task}_epochs"), alone))
  for r in rows:
    r["split"] = "test" if any(k.startswith("test/") for k in rows[0]["scores"]) else "eval"
  markdown = table(rows, tasks)
  print(markdown)
  with open(os.path.join(args.workdir, "results.md"), "w") as f:
    f.write(markdown + "\n")
  with open(os.path.join(args.workdir, "results.json"), "w") as f:
    json.dump({"config": args.config, "overrides": args.override, "rows": rows}, f, indent=2)


if __name__ == "__main__":
  main()
