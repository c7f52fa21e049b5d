"""The fine-tuning recipe's sweep: learning rate x head learning rate x epochs x batch size (x head init), N seeds
each, scored on the validation splits only (`train.score_test=False`: test splits stay held out of training, unscored;
the sweep cannot pick a recipe by test).

  python experiments/sweep_recipe.py --config=configs/flair_pos_chunk.py --workdir=runs/sweep_flair \
      --learning_rates=5e-5,1e-4,3e-4 --head_rates=0,1e-3 --epochs=1,2 --batch_sizes=4,8 --head_inits=normal,xavier
  python experiments/sweep_recipe.py --config=configs/pos_chunk.py:smoke --workdir=/tmp/sweep_smoke \
      --learning_rates=1e-3 --head_rates=0,1e-2 --epochs=1 --batch_sizes=16 --seeds=0,1 --steps=6

Each grid point and seed (seeds 0, 1, 2 unless `--seeds` says otherwise) is one `python -m mtl_jax.main` process in
`<workdir>/<point>/seed<s>`; head rate 0 is the encoder's rate (one AdamW for all parameters). A finished
run's figures are kept in its `run.json` and not run again, so an interrupted sweep resumes. The figures of a run are
its last evaluation's `eval/<task>/main` and `eval/mean/main`, and its wall time. Writes `<workdir>/results.json`
(every run) and `results.md` (per grid point: mean and standard deviation over seeds, best first) and prints the
table. `--dry_run` prints the commands only.
"""

import argparse
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AXES = {  # grid axis -> (the config field it sets, the type of its values)
    "learning_rate": ("train.learning_rate", float), "head_learning_rate": ("train.head_learning_rate", float),
    "epochs": ("train.epochs", float), "batch_size": ("train.batch_size", int), "head_init": ("encoder.head_init", str),
}


def load_config(spec: str):
  """The config a `--config=path[:arg]` flag names (path relative to the repository)."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("swept_config", os.path.join(REPO, path))
  module = importlib.util.module_from_spec(module_spec)
  sys.path.insert(0, REPO)  # configs import `configs.default`
  module_spec.loader.exec_module(module)
  return module.get_config(arg)


def grid(args) -> list[dict]:
  """Every combination of the axes' comma-separated values, as {axis: value}."""
  given = [args.learning_rates, args.head_rates, args.epochs, args.batch_sizes, args.head_inits]
  values = [[kind(v) for v in text.split(",")] for (_, kind), text in zip(AXES.values(), given)]
  return [dict(zip(AXES, point)) for point in itertools.product(*values)]


def point_name(point: dict) -> str:
  return "lr{learning_rate:g}_head{head_learning_rate:g}_ep{epochs:g}_bs{batch_size}_{head_init}".format(**point)


def command(args, point: dict, seed: int, workdir: str, extra: list[str]) -> list[str]:
  flags = [f"--config.{AXES[k][0]}={v}" for k, v in point.items()]
  return [sys.executable, "-m", "mtl_jax.main", f"--config={args.config}", f"--workdir={workdir}", *flags,
          f"--config.seed={seed}", *extra]


def dev_scores(workdir: str) -> tuple[int, dict[str, float]]:
  """(last step, the `eval/.../main` figures of the run's last evaluation) from its metrics.jsonl."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    events = [json.loads(line) for line in f]
  evals = [e for e in events if any(k.startswith("eval/") for k in e)]
  return evals[-1]["step"], {k: v for k, v in evals[-1].items()
                             if k.startswith("eval/") and k.endswith("/main") and k != "eval/std/main"}


def run(cmd: list[str], workdir: str, point: dict, seed: int) -> dict:
  """Trains one grid point and seed (unless its run.json says it is done); its figures."""
  done = os.path.join(workdir, "run.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  start = time.perf_counter()
  subprocess.run(cmd, cwd=REPO, check=True)
  steps, scores = dev_scores(workdir)
  row = {**point, "seed": seed, "steps": steps, "seconds": time.perf_counter() - start, "scores": scores}
  with open(done, "w") as f:
    json.dump(row, f, indent=2)
  return row


def summarise(rows: list[dict]) -> list[dict]:
  """One entry per grid point: mean and std over its seeds of every score and of the wall time."""
  points = {}
  for r in rows:
    points.setdefault(tuple(r[k] for k in AXES), []).append(r)
  out = []
  for key, runs in points.items():
    names = sorted(set.intersection(*(set(r["scores"]) for r in runs)))
    stats = {n: (float(np.mean([r["scores"][n] for r in runs])), float(np.std([r["scores"][n] for r in runs])))
             for n in names}
    out.append({**dict(zip(AXES, key)), "seeds": len(runs), "steps": runs[0]["steps"], "scores": stats,
                "seconds": float(np.mean([r["seconds"] for r in runs]))})
  return sorted(out, key=lambda p: -p["scores"].get("eval/mean/main", (0.0, 0.0))[0])


def table(summary: list[dict]) -> str:
  """Markdown, best mean dev score first: the grid point, each task's dev main score (mean ± std over seeds)."""
  tasks = sorted({k.split("/")[1] for p in summary for k in p["scores"]} - {"mean"}) + ["mean"]
  head = ["lr", "head lr", "epochs", "batch", "head init", "steps", *[f"{t} dev" for t in tasks], "seeds",
          "wall time"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for p in summary:
    cells = [f"{p['scores'][f'eval/{t}/main'][0]:.4f} ± {p['scores'][f'eval/{t}/main'][1]:.4f}"
             if f"eval/{t}/main" in p["scores"] else "—" for t in tasks]
    head_lr = f"{p['head_learning_rate']:g}" if p["head_learning_rate"] > 0 else "= lr"
    lines.append(f"| {p['learning_rate']:g} | {head_lr} | {p['epochs']:g} | {p['batch_size']} | {p['head_init']} | "
                 f"{p['steps']} | "
                 + " | ".join(cells) + f" | {p['seeds']} | {p['seconds']:.0f} s |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="configs/flair_pos_chunk.py", help="path[:arg], relative to the repo")
  parser.add_argument("--workdir", required=True, help="one subdirectory per grid point and seed goes here")
  parser.add_argument("--learning_rates", default="5e-5,1e-4,3e-4", help="train.learning_rate, comma-separated")
  parser.add_argument("--head_rates", default="0,1e-3", help="train.head_learning_rate (0: the encoder's)")
  parser.add_argument("--epochs", default="1,2", help="train.epochs")
  parser.add_argument("--batch_sizes", default="4,8,16", help="train.batch_size")
  parser.add_argument("--head_inits", default="normal", help="encoder.head_init (normal, xavier)")
  parser.add_argument("--seeds", default="0,1,2", help="config.seed of each repetition")
  parser.add_argument("--steps", type=int, default=0, help="> 0: train.steps for every run (smoke sweeps)")
  parser.add_argument("--override", action="append", default=[], help="a --config.x=y flag for every run")
  parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  args = parser.parse_args()

  extra = ["--config.train.score_test=False", *([f"--config.train.steps={args.steps}"] if args.steps else []),
           *args.override]
  rows = []
  for point in grid(args):
    for seed in (int(s) for s in args.seeds.split(",")):
      workdir = os.path.join(args.workdir, point_name(point), f"seed{seed}")
      cmd = command(args, point, seed, workdir, extra)
      if args.dry_run:
        print(" ".join(cmd[1:]))
        continue
      rows.append(run(cmd, workdir, point, seed))
  if args.dry_run:
    return
  summary = summarise(rows)
  markdown = table(summary)
  print(markdown)
  with open(os.path.join(args.workdir, "results.md"), "w") as f:
    f.write(markdown + "\n")
  with open(os.path.join(args.workdir, "results.json"), "w") as f:
    json.dump({"config": args.config, "overrides": extra, "runs": rows, "summary": summary}, f, indent=2)


if __name__ == "__main__":
  main()
