"""Training throughput: mtl_jax's jitted train step against a PyTorch / transformers reference and two ablations, in
one run on one machine, with the same encoder weights, texts, batches and batch size.

  python benchmarks/throughput.py                     # MiniLM, every variant; a few minutes on 2 CPU cores
  python benchmarks/throughput.py --encoder=random-tiny --windows=2 --steps=2 --batch_size=4   # seconds

Texts: CoNLL-2003 training sentences (words joined by spaces) and TweetEval tweets, half each, tokenised once by the
encoder's tokenizer (cut to the largest length bucket). Three classification tasks (3, 2 and 4 classes) with seeded
random labels: `--labels=one` labels each text for one task (corpora mixed in a batch), `--labels=all` for all three.
Batches: the first `--steps` batches of mtl_jax's sampler (`sampling.MixtureOrder`: a seeded shuffle, with
`--group_by_length` runs of 16 batches sorted by length, as `config.data.group_by_length`). Every variant takes the
same batches, and every window runs those same batches again, so windows (and variants) do the same work.

Variants:
  mtl_jax        `train.train_step`, jitted with shardings and a donated state as `train_and_evaluate` jits it, each
                 batch padded by `make_batch` to the smallest of `config.data.length_buckets` that fits;
  pytorch        transformers.BertModel (the same weights) + mean pooling + one grouped nn.Linear + grouped
                 cross-entropy + torch.optim.AdamW with gradient clipping, each batch padded to its longest text (as
                 DataCollatorWithPadding pads), `torch.set_num_threads(--threads)`;
  per_task_pass  mtl_jax's model with one encoder pass per task sub-batch, as Flair's MultitaskModel splits a batch
                 by task: the rows labelled for each task form their own batch (rows rounded up to a multiple of
                 batch_size / 4, length to the bucket), gradients are summed over the passes, then one AdamW update;
  fixed_length   mtl_jax's step with every batch padded to the largest bucket (128), no bucketing.

Each variant first runs the window's batches `--warmup` times (JAX compiles every shape there). Then come `--windows`
timed rounds; each round runs one window of every variant (in a rotating order), so load from other work on the
machine that drifts during the run slows every variant alike. A variant's median window gives its figures. Real
tokens are the non-pad tokens of a step's texts, each text counted once; processed tokens are every position an
encoder pass computes (pad rows and positions included). `compiles` counts the traces of a JAX variant's jitted
functions (one per compiled shape) and, after the slash, the XLA compilations inside its timed windows (0: compile
time is excluded).
"""

import argparse
import dataclasses
import functools
import os
import sys
from collections.abc import Callable

if __package__ in (None, ""):  # run as `python benchmarks/throughput.py`: import from the repository root
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from benchmarks import common  # noqa: E402
from mtl_jax.input_pipeline import Encoded, make_batch  # noqa: E402
from mtl_jax.losses import grouped_cross_entropy, total_loss  # noqa: E402
from mtl_jax.model import Model  # noqa: E402
from mtl_jax.sharding import batch_sharding, make_mesh  # noqa: E402
from mtl_jax.train import make_optimizer, train_step  # noqa: E402

VARIANTS = ("mtl_jax", "pytorch", "per_task_pass", "fixed_length")
BASELINE = "mtl_jax"
DEFAULT_OUTPUT = os.path.join(common.REPO, "benchmarks", "results", "throughput.json")


@dataclasses.dataclass
class Setup:
  """What every variant shares: model pieces, optimizer, data and batch settings (from configs/three_task.py)."""
  config: ml_collections.ConfigDict
  model: Model
  pretrained: dict | None  # encoder params; None for a random preset
  weights_dir: str | None  # the packaged weights, for PyTorch; None for a random preset
  tx: optax.GradientTransformation
  tokenizer: object
  data: Encoded
  batch_size: int
  initial_state: dict | None = None  # host copy; every variant starts from it (the step donates its state)

  @property
  def pad_id(self) -> int:
    return self.tokenizer.pad_token_id or 0

  @property
  def buckets(self) -> tuple[int, ...]:
    return tuple(self.config.data.length_buckets)


@dataclasses.dataclass
class Runner:
  """One variant: `host(idx)` builds the numpy batches of one training step from rows `idx` (several for
  per_task_pass), `run(batches)` takes the step, `sync()` waits for queued device work, `traces()` counts the
  traces (= compiled shapes) of its jitted functions, None for PyTorch."""
  host: Callable[[np.ndarray], list[dict]]
  run: Callable[[list[dict]], None]
  sync: Callable[[], None]
  traces: Callable[[], int | None]


def counted(fn: Callable, counter: list[int]) -> Callable:
  """`fn`, adding 1 to counter[0] each time JAX traces it."""
  @functools.wraps(fn)
  def traced(*args, **kwargs):
    counter[0] += 1
    return fn(*args, **kwargs)
  return traced


# ---------------------------------------------------------------------------------------------------------------
# Setup.

def make_config(args) -> ml_collections.ConfigDict:
  """configs/three_task.py with the benchmark's encoder, dtype and batch size."""
  config = common.base_config(args.encoder, args.dtype, args.batch_size, args.seed)
  config.data.group_by_length = args.group_by_length
  if args.length_buckets:
    config.data.length_buckets = tuple(int(b) for b in args.length_buckets.split(","))
  return config


def make_setup(args) -> Setup:
  config = make_config(args)
  model, pretrained, tokenizer, weights_dir = common.build_model(config)
  texts = common.load_texts(args.data_root, args.num_texts, args.seed)
  labels = common.random_labels(len(texts), model.layout.group_sizes, args.labels, args.seed)
  data = common.encode(texts, labels, tokenizer, max(config.data.length_buckets))
  tx = make_optimizer(config.train, optax.constant_schedule(config.train.learning_rate))
  setup = Setup(config, model, pretrained, weights_dir, tx, tokenizer, data, args.batch_size)
  return dataclasses.replace(setup, initial_state=jax.device_get(fresh_state(setup)))


def fresh_state(setup: Setup) -> dict:
  """Initial params (the pretrained encoder when there is one), optimizer state and step, as training starts."""
  params = jax.jit(setup.model.init)(jax.random.key(setup.config.seed))
  if setup.pretrained is not None:
    params["encoder"] = jax.device_put(setup.pretrained)
  return {"params": params, "opt_state": jax.jit(setup.tx.init)(params), "step": jnp.asarray(0, jnp.int32)}


def dropout_key(setup: Setup) -> jax.Array:
  return jax.random.split(jax.random.key(setup.config.seed))[1]


def device_put_fn(setup: Setup) -> tuple[Callable[[dict], dict], NamedSharding, NamedSharding]:
  """(host batch -> global device arrays, the replicated sharding, the batch sharding) on the config's mesh, as
  train_and_evaluate places them (no partition rules: parameters and optimizer state replicated)."""
  mesh = make_mesh(setup.config.mesh)
  data_sh = batch_sharding(mesh)
  to_device = lambda batch: {k: jax.make_array_from_process_local_data(data_sh, v) for k, v in batch.items()}
  return to_device, NamedSharding(mesh, P()), data_sh


# ---------------------------------------------------------------------------------------------------------------
# Variants.

def jax_runner(setup: Setup, buckets: tuple[int, ...]) -> Runner:
  """mtl_jax's train_step on batches padded to the smallest of `buckets` that fits (one bucket: fixed length)."""
  to_device, replicated, data_sh = device_put_fn(setup)
  traces = [0]
  step_fn = functools.partial(train_step, model=setup.model, tx=setup.tx, dropout_key=dropout_key(setup))
  step = jax.jit(counted(step_fn, traces), in_shardings=(replicated, data_sh), out_shardings=(replicated, replicated),
                 donate_argnums=0)
  state = jax.device_put(setup.initial_state, replicated)

  def run(batches):
    nonlocal state
    for batch in batches:
      state, _ = step(state, to_device(batch))

  return Runner(lambda idx: [make_batch(setup.data, idx, setup.batch_size, buckets, setup.pad_id)], run,
                lambda: jax.block_until_ready(state), lambda: traces[0])


def task_sub_batches(data: Encoded, idx: np.ndarray, batch_size: int, buckets, pad_id: int) -> list[dict]:
  """Flair's split of a batch: for each task, the rows of `idx` labelled for it as a batch of their own, labelled
  for that task only; rows are rounded up to a multiple of batch_size / 4 (a few shapes to compile, not one per
  count) and the length to the bucket."""
  multiple, sub = max(batch_size // 4, 1), []
  for t in range(data.labels.shape[1]):
    rows = idx[data.labels[idx, t] >= 0]
    if len(rows):
      batch = make_batch(data, rows, min(-(-len(rows) // multiple) * multiple, batch_size), buckets, pad_id)
      others = np.arange(data.labels.shape[1]) != t
      batch["labels"][:, others], batch["weights"][:, others] = -1, 0.0
      sub.append(batch)
  return sub


def task_grads(params: dict, acc: dict, batch: dict, step: jax.Array, salt: jax.Array, *, model: Model,
               dropout_key: jax.Array) -> dict:
  """`acc` plus the gradients of one sub-batch's loss (its batch labels one task, so the loss is that task's)."""
  rng = jax.random.fold_in(jax.random.fold_in(dropout_key, step), salt)

  def loss_fn(p):
    sums, counts = grouped_cross_entropy(model.logits(p, batch, rng), batch, model.layout)
    return total_loss(sums, counts, model.layout)

  return jax.tree.map(jnp.add, acc, jax.grad(loss_fn)(params))


def apply_grads(state: dict, grads: dict, *, tx: optax.GradientTransformation) -> dict:
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  return {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state, "step": state["step"] + 1}


def per_task_runner(setup: Setup) -> Runner:
  """One encoder pass per task sub-batch; the summed gradients (= the gradient of the summed task losses, what
  Flair back-propagates) go through one optimizer update."""
  to_device, replicated, _ = device_put_fn(setup)
  traces = [0]
  grads = jax.jit(counted(functools.partial(task_grads, model=setup.model, dropout_key=dropout_key(setup)), traces),
                  donate_argnums=1)
  update = jax.jit(counted(functools.partial(apply_grads, tx=setup.tx), traces), donate_argnums=0)
  zeros = jax.jit(counted(lambda p: jax.tree.map(jnp.zeros_like, p), traces))
  state = jax.device_put(setup.initial_state, replicated)

  def run(batches):
    nonlocal state
    acc = zeros(state["params"])
    for salt, batch in enumerate(batches):
      acc = grads(state["params"], acc, to_device(batch), state["step"], np.int32(salt))
    state = update(state, acc)

  host = lambda idx: task_sub_batches(setup.data, idx, setup.batch_size, setup.buckets, setup.pad_id)
  return Runner(host, run, lambda: jax.block_until_ready(state), lambda: traces[0])


def torch_runner(setup: Setup, attention: str) -> Runner:
  """The PyTorch reference in train mode, each batch padded to its longest text."""
  tc, layout = setup.config.train, setup.model.layout
  model = common.torch_reference(setup.model.encoder.config, setup.weights_dir, layout.total("classification"),
                                 attention, setup.config.seed)
  model.train()
  optimizer = common.torch_optimizer(model, tc.learning_rate, tc.weight_decay)
  head_dropout = setup.config.encoder.head_dropout

  def run(batches):
    for batch in batches:
      common.torch_train_step(model, optimizer, batch, layout.group_sizes, head_dropout, tc.grad_clip)

  return Runner(lambda idx: [common.pad_to_longest(setup.data, idx, setup.pad_id)], run, lambda: None, lambda: None)


def make_runner(name: str, setup: Setup, args) -> Runner:
  if name == "mtl_jax":
    return jax_runner(setup, setup.buckets)
  if name == "fixed_length":
    return jax_runner(setup, (max(setup.buckets),))
  if name == "per_task_pass":
    return per_task_runner(setup)
  if name == "pytorch":
    return torch_runner(setup, args.torch_attention)
  raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}")


# ---------------------------------------------------------------------------------------------------------------
# Measuring.

def window_fn(runner: Runner, steps: list[np.ndarray]) -> Callable[[], None]:
  """One window: every step's host batches built and run, then a wait for the device."""
  def window():
    for idx in steps:
      runner.run(runner.host(idx))
    runner.sync()
  return window


def warm(runner: Runner, steps: list[np.ndarray], warmup: int) -> dict:
  """Untimed passes over the window's steps (JAX compiles every shape here): their seconds and compilations."""
  seconds, compiles, compile_s = common.timed(common.repeated(window_fn(runner, steps), warmup))
  jax_side = runner.traces() is not None
  return {"warmup_s": seconds, "xla_compiles_warmup": compiles if jax_side else None,
          "compile_s": compile_s if jax_side else None}


def figures(runner: Runner, steps: list[np.ndarray], data: Encoded, seconds: list[float], compiles_timed: int,
            warmed: dict) -> dict:
  """The variant's throughput from its window times and the work one window does."""
  processed = sum(b["input_ids"].size for idx in steps for b in runner.host(idx))
  real = sum(common.real_tokens(data, idx) for idx in steps)
  traces = runner.traces()
  return common.summarize(seconds, sum(len(idx) for idx in steps), real, processed, steps_per_window=len(steps),
                          compiles=traces, compiles_timed=None if traces is None else compiles_timed, **warmed)


def settings(args, setup: Setup, steps: list[np.ndarray]) -> dict:
  lengths = setup.data.lengths
  return {**vars(args), "length_buckets": list(setup.buckets), "fixed_length": max(setup.buckets),
          "group_sizes": list(setup.model.layout.group_sizes), "pooling": setup.config.encoder.pooling,
          "head_dropout": setup.config.encoder.head_dropout, "learning_rate": setup.config.train.learning_rate,
          "weight_decay": setup.config.train.weight_decay, "grad_clip": setup.config.train.grad_clip,
          "encoder_config": setup.model.encoder.config.to_dict(),
          "text_tokens": {"mean": float(lengths.mean()), "median": float(np.median(lengths)),
                          "max": int(lengths.max())},
          "batch_longest": [common.longest(setup.data, idx) for idx in steps],
          "batch_order": "mtl_jax sampler (MixtureOrder), first `steps` batches"
                         + (", grouped by length" if args.group_by_length else ", random"),
          "jax_cpu_threads": "XLA's default thread pool"}


def run(args) -> tuple[dict, str]:
  """Measures every variant in `args.variants`; returns the report (also written to `args.output`) and the table."""
  names = [v for v in args.variants.split(",") if v]
  if unknown := [v for v in names if v not in VARIANTS]:
    raise SystemExit(f"error: --variants: unknown {unknown}; expected some of {list(VARIANTS)}")
  if "pytorch" in names and not common.torch_available():
    raise SystemExit("error: the pytorch variant needs torch: pip install torch==2.13.0")
  if args.warmup < 1:
    raise SystemExit("error: --warmup: expected >= 1 (JAX compiles in the warm-up)")
  common.compile_stats()  # starts counting
  report = {"benchmark": "throughput", "machine": common.machine_info(), "versions": common.versions()}
  setup = make_setup(args)
  steps = common.batch_order(setup.data, args.batch_size, args.steps, args.seed, args.group_by_length)
  report["settings"] = settings(args, setup, steps)
  if "pytorch" in names:
    report["settings"]["torch_threads"] = common.set_torch_threads(args.threads)
  runners, warmed = {}, {}
  for name in names:
    print(f"warming up {name} ...", file=sys.stderr, flush=True)
    runners[name] = make_runner(name, setup, args)
    warmed[name] = warm(runners[name], steps, args.warmup)
  print(f"{args.windows} timed rounds of {len(names)} windows ...", file=sys.stderr, flush=True)
  timed = common.interleaved_windows({name: window_fn(r, steps) for name, r in runners.items()}, args.windows)
  report["results"] = {name: figures(runners[name], steps, setup.data, *timed[name], warmed[name]) for name in names}
  return report, common.finish(report, args.output, BASELINE)


def parse_args(argv=None) -> argparse.Namespace:
  parser = common.argument_parser(__doc__, VARIANTS, DEFAULT_OUTPUT)
  add = parser.add_argument
  add("--steps", type=int, default=3, help="training steps (batches) per window")
  add("--warmup", type=int, default=1, help="untimed passes over the window's batches first (compiles)")
  add("--num_texts", type=int, default=2048, help="texts drawn from the corpora (the sampler's pool)")
  add("--labels", choices=common.LABEL_MODES, default="one", help="each text labelled for one task, or for all")
  add("--group_by_length", action=argparse.BooleanOptionalAction, default=True,
      help="batches of similar length, as config.data.group_by_length")
  add("--length_buckets", default="", help="comma-separated; default: configs/three_task.py's")
  return parser.parse_args(argv)


if __name__ == "__main__":
  common.main(parse_args, run)
