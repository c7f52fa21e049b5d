"""The same training run on 1 and on 8 simulated CPU devices (and meshes of them), same global batch and data.

  python benchmarks/devices.py                       # MiniLM, three_task, 25 steps per mesh
  python benchmarks/devices.py --config=configs/three_task.py:smoke --steps=20   # seconds

Each mesh is a real `python -m mtl_jax.main` run in its own process (XLA_FLAGS sets the device count). Its figure is
the median of `train/examples_per_sec` over the log windows after the first (which holds the compilations). On a
machine with fewer cores than devices, simulated devices share the cores: this measures the overhead of sharding
(collectives, partitioned programs), not a speed-up.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run as `python benchmarks/devices.py`: import from the repository root

from mtl_jax import distributed  # noqa: E402 (standard library only: no JAX in this parent process)

MESHES = {"1 device": (1, (-1, 1, 1)), "8 devices data=8": (8, (-1, 1, 1)),
          "8 devices data=2 fsdp=2 model=2": (8, (2, 2, 2)), "8 devices model=8": (8, (1, 1, 8))}


def run(config: str, devices: int, mesh: tuple[int, int, int], steps: int, log_every: int, workdir: str,
        overrides: list[str]) -> dict:
  env = distributed.cpu_devices_env(devices)
  data, fsdp, model = mesh
  out = subprocess.run([sys.executable, "-m", "mtl_jax.main", f"--config={config}", f"--workdir={workdir}",
                        f"--config.train.steps={steps}", f"--config.train.log_every={log_every}",
                        f"--config.train.eval_every={steps}", f"--config.mesh.data={data}",
                        f"--config.mesh.fsdp={fsdp}", f"--config.mesh.model={model}", *overrides],
                       env=env, capture_output=True, text=True, cwd=REPO)
  if out.returncode:
    raise SystemExit(out.stderr[-3000:])
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    windows = [e["train/examples_per_sec"] for e in map(json.loads, f) if "train/examples_per_sec" in e]
  return {"examples_per_s": statistics.median(windows[1:]), "windows": windows}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/three_task.py")
  parser.add_argument("--steps", type=int, default=25)
  parser.add_argument("--log_every", type=int, default=5)
  parser.add_argument("--override", action="append", default=["--config.data.validation=64"],
                      help="more flags for mtl_jax.main (default: a 64-row validation split, to keep the final "
                      "evaluation short)")
  parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "devices.json"))
  args = parser.parse_args()
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    for name, (devices, mesh) in MESHES.items():
      workdir = os.path.join(tmp, str(len(results)))
      results[name] = run(args.config, devices, mesh, args.steps, args.log_every, workdir, args.override)
      print(f"{name:<32} {results[name]['examples_per_s']:8.1f} examples/s", flush=True)
  report = {"benchmark": "devices", "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "settings": vars(args), "results": results}
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {args.output}")


if __name__ == "__main__":
  main()
