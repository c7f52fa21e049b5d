"""Training throughput: mtl_jax's jitted train step on packed batches (the configs' default) against a PyTorch /
transformers reference and five ablations, in one run on one machine, with the same encoder weights, texts and
examples.

  python benchmarks/throughput.py                     # MiniLM, every variant; a few minutes on 2 CPU cores
  python benchmarks/throughput.py --encoder=random-tiny --windows=2 --steps=2 --batch_size=4   # seconds

Texts: CoNLL-2003 training sentences (words joined by spaces) and TweetEval tweets, half each (`--num_texts`, the
sampler's pool), tokenised once by the encoder's tokenizer (cut to the largest length bucket, 128). Three
classification tasks (3, 2 and 4 classes) with seeded random labels: `--labels=one` labels each text for one task
(corpora mixed in a batch), `--labels=all` for all three.

The window's examples: the texts of the first `--steps` batches of mtl_jax's sampler (`sampling.MixtureOrder`) as
the configs train by default, packed (`config.data.packing`). Every variant processes exactly these texts in a
window (so real tokens match); how it cuts them into batches and pads them differs:
  mtl_jax              `config.data.packing` (the default): those `--steps` batches as the sampler makes them, R rows
                       of the longest length bucket (128), each holding several whole texts (first-fit decreasing
                       within runs of 1024 texts; a text opens a row of the shortest of 32, 64 and 128 tokens that
                       holds it, `config.data.packed_lengths`' default, and a batch's rows of 32 or 64 lie side by
                       side in its rows of 128, attending within blocks of their length), with block-diagonal
                       attention and positions restarting per text; R makes a batch hold `--batch_size` texts on
                       average: one shape, one compile;
  token_budget         `config.data.tokens_per_batch` without packing: each text goes to the smallest of `--buckets`
                       that fits; bucket L's texts are cut into batches of B_L rows, the largest with B_L x L <= the
                       budget (a bucket's leftover moves up a bucket; the largest bucket's leftover is one short
                       batch, padded with empty rows); each batch padded to exactly (B_L, L): one shape, one
                       compile, per bucket. The default budget makes batches hold `--batch_size` examples on average
                       over the pool's epoch;
  bucketed_fixed_rows  mtl_jax's behaviour before token budgets (`tokens_per_batch` = 0): the window's texts in
                       batches of `--batch_size` rows (seeded shuffle; with `--group_by_length`, sorted by length
                       in runs of 16 batches, as `config.data.group_by_length`), each padded to the smallest of
                       configs/three_task.py's `length_buckets` (32, 48, 64, 96, 128) that fits;
  fixed_length         the same batches padded to the largest bucket (128): no bucketing;
  pytorch              transformers.BertModel (the same weights) + mean pooling + one grouped nn.Linear + grouped
                       cross-entropy + torch.optim.AdamW (the same parameter groups) with gradient clipping, on the
                       same batches of `--batch_size` rows, each padded to its longest text (as
                       DataCollatorWithPadding pads), `torch.set_num_threads(--threads)`;
  per_task_pass        mtl_jax's model with one encoder pass per task sub-batch, as Flair's MultitaskModel splits a
                       batch by task: the rows of those batches labelled for each task form their own batch (rows
                       rounded up to a multiple of batch_size / 4, length to the bucket), gradients are summed over
                       the passes, then one AdamW update.
The last batch of `--batch_size` rows may be short (JAX pads it with empty rows, PyTorch does not).

Each variant first runs the window's batches `--warmup` times (JAX compiles every shape there). Then come `--windows`
timed rounds; each round runs one window of every variant (in a rotating order), so load from other work on the
machine that drifts during the run slows every variant alike. A variant's median window gives its figures. Real
tokens are the non-pad tokens of a step's texts, each text counted once; processed tokens are every position an
encoder pass computes (pad rows and positions included). `real frac` is the window's real / processed tokens,
`epoch frac` the same over one epoch of the whole pool, batched as the variant batches (no timing; a steadier
figure than a window of a few batches). `compiles` counts the traces of a JAX variant's jitted functions (one per
compiled shape) and, after the slash, the XLA compilations inside its timed windows (0: compile time is excluded).
`vs pytorch` and `vs per_task_pass`: real tokens/s over theirs (= examples/s over theirs: the same examples).
Packed, every position of a row is computed, so attention spans the whole row (the texts' blocks and the masked
rest): real tokens/s counts the texts' tokens only.
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
from mtl_jax.input_pipeline import Encoded, make_batch, make_step_batch  # noqa: E402
from mtl_jax.losses import grouped_loss, total_loss  # noqa: E402
from mtl_jax.model import Model  # noqa: E402
from mtl_jax.optim import make_optimizer  # noqa: E402
from mtl_jax.sampling import (  # noqa: E402
  MixtureOrder,
  Packing,
  StepBatch,
  bucket_batch_sizes,
  bucket_of,
  cut_by_bucket,
  packed_lengths,
  packing_for,
)
from mtl_jax.sharding import batch_sharding, make_mesh  # noqa: E402
from mtl_jax.steps import train_step  # noqa: E402

VARIANTS = ("mtl_jax", "token_budget", "bucketed_fixed_rows", "pytorch", "per_task_pass", "fixed_length")
BASELINES = ("pytorch", "per_task_pass")
FINE_BUCKETS = (8, 12, 16, 20, 24, 28, 32, 36, 40, 48, 56, 64, 80, 96, 128)  # token_budget's buckets (--buckets)
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
  fine_buckets: tuple[int, ...]  # token_budget's buckets
  tokens_per_batch: int
  packing: Packing  # mtl_jax's packed batches
  initial_state: dict | None = None  # host copy; every variant starts from it (the step donates its state)

  @property
  def pad_id(self) -> int:
    return self.tokenizer.pad_token_id or 0

  @property
  def buckets(self) -> tuple[int, ...]:
    return tuple(self.config.data.length_buckets)


@dataclasses.dataclass
class Runner:
  """One variant: `host(plan)` builds the numpy batches of one training step from a `StepBatch` (rows, batch size,
  length or None; several batches for per_task_pass), `run(batches)` takes the step, `sync()` waits for queued
  device work, `traces()` counts the traces (= compiled shapes) of its jitted functions, None for PyTorch."""
  host: Callable[[StepBatch], list[dict]]
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

def int_list(text: str, flag: str) -> tuple[int, ...]:
  try:
    return tuple(int(b) for b in text.split(",") if b.strip())
  except ValueError:
    raise SystemExit(f"error: {flag}: expected comma-separated integers, found {text!r}") from None


def make_config(args) -> ml_collections.ConfigDict:
  """configs/three_task.py with the benchmark's encoder, dtype and batch size."""
  config = common.base_config(args.encoder, args.dtype, args.batch_size, args.seed)
  config.data.group_by_length = args.group_by_length
  if args.length_buckets:
    config.data.length_buckets = int_list(args.length_buckets, "--length_buckets")
  return config


def budget_order(data: Encoded, batch_size: int, seed: int, buckets, tokens_per_batch: int) -> MixtureOrder:
  """mtl_jax's sampler over the pool with a token budget (one device: batch sizes are multiples of 1)."""
  return MixtureOrder([len(data)], [1.0], batch_size, seed, data.lengths, buckets=buckets,
                      tokens_per_batch=tokens_per_batch)


def default_budget(data: Encoded, batch_size: int, seed: int, buckets) -> int:
  """The token budget whose batches hold `batch_size` examples on average over an epoch of the pool: the smallest
  multiple of 8 from batch_size x the mean bucket length (about right) up at which they hold at least that many,
  and at least the longest bucket."""
  mean_bucket = float(np.mean(np.asarray(sorted(buckets))[bucket_of(data.lengths, buckets)]))
  budget = max(int(batch_size * mean_bucket) // 8 * 8, max(buckets))
  while budget < batch_size * max(buckets):  # there every bucket's batches hold >= batch_size examples
    order = budget_order(data, batch_size, seed, buckets, budget)
    if order.counts.sum() / order.per_epoch >= batch_size:
      break
    budget += 8
  return budget


def make_setup(args) -> Setup:
  config = make_config(args)
  fine = int_list(args.buckets, "--buckets")
  if not fine or max(fine) != max(config.data.length_buckets) or min(fine) < 3:
    raise SystemExit(f"error: --buckets: expected lengths > 2 whose largest is the texts' max length "
                     f"{max(config.data.length_buckets)} (the largest of the length buckets), found {args.buckets!r}")
  model, pretrained, tokenizer, weights_dir = common.build_model(config)
  texts = common.load_texts(args.data_root, args.num_texts, args.seed)
  labels = common.random_labels(len(texts), model.layout.group_sizes, args.labels, args.seed)
  data = common.encode(texts, labels, tokenizer, max(config.data.length_buckets))
  if args.batch_size > len(data):
    raise SystemExit(f"error: --batch_size: {args.batch_size} is larger than the {len(data)} texts (--num_texts)")
  budget = args.tokens_per_batch or default_budget(data, args.batch_size, args.seed, fine)
  tx = make_optimizer(config.train, optax.constant_schedule(config.train.learning_rate))
  packing = packing_for(args.batch_size, data.lengths,
                        packed_lengths(config.data.length_buckets, config.data.packed_lengths))
  setup = Setup(config, model, pretrained, weights_dir, tx, tokenizer, data, args.batch_size, fine, budget, packing)
  return dataclasses.replace(setup, initial_state=jax.device_get(fresh_state(setup)))


# ---------------------------------------------------------------------------------------------------------------
# Batches: the window's examples, cut into batches as each variant cuts them.

def fixed_row_batches(rows: np.ndarray, lengths: np.ndarray, batch_size: int, group_by_length: bool,
                      seed: int) -> list[StepBatch]:
  """`rows` in batches of `batch_size` rows (the last may be short), as the sampler makes fixed-size batches: a
  seeded shuffle and, with `group_by_length`, runs of 16 batches sorted by length; the batches then shuffled."""
  rng = np.random.default_rng([seed, 0x66726F])
  rows, chunk = rng.permutation(rows), 16 * batch_size
  if group_by_length:
    rows = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in np.split(rows, range(chunk, len(rows),
                                                                                                    chunk))])
  batches = np.split(rows, range(batch_size, len(rows), batch_size))
  return [StepBatch(batches[i], batch_size, None) for i in rng.permutation(len(batches))]


def budget_batches(rows: np.ndarray, setup: Setup) -> list[StepBatch]:
  """`rows` in token-budget batches, as the sampler cuts an epoch's (shuffled) rows."""
  sizes = bucket_batch_sizes(setup.fine_buckets, setup.tokens_per_batch)
  batches, ids = cut_by_bucket(rows, bucket_of(setup.data.lengths[rows], setup.fine_buckets), list(sizes.values()))
  lengths = np.asarray(sorted(setup.fine_buckets))[ids]
  return [StepBatch(b, sizes[int(n)], int(n)) for b, n in zip(batches, lengths)]


def plans(setup: Setup, args) -> dict[str, list[StepBatch]]:
  """{"packed": the first `--steps` packed batches, "budget" / "fixed_rows": their texts in token-budget batches and
  in batches of --batch_size rows, "<plan>_epoch": one epoch of the pool each way (for the epoch real-token
  fractions)}."""
  lengths = setup.data.lengths
  order = MixtureOrder([len(setup.data)], [1.0], setup.batch_size, args.seed, lengths, packing=setup.packing)
  packed = [order.batch(s) for s in range(args.steps)]
  window = np.concatenate([b.rows for b in packed])
  shuffled = np.random.default_rng([args.seed, 0x627564]).permutation(window)
  budget = budget_order(setup.data, setup.batch_size, args.seed, setup.fine_buckets, setup.tokens_per_batch)
  fixed_order = MixtureOrder([len(setup.data)], [1.0], setup.batch_size, args.seed, lengths, args.group_by_length)
  return {"packed": packed, "budget": budget_batches(shuffled, setup),
          "fixed_rows": fixed_row_batches(window, lengths, setup.batch_size, args.group_by_length, args.seed),
          "packed_epoch": [order.batch(s) for s in range(order.per_epoch)],
          "budget_epoch": [budget.batch(s) for s in range(budget.per_epoch)],
          "fixed_rows_epoch": [fixed_order.batch(s) for s in range(fixed_order.per_epoch)]}


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

def jax_runner(setup: Setup, buckets: tuple[int, ...], packed: bool = False) -> Runner:
  """mtl_jax's train_step on batches padded to the plan's (batch size, length), or to the smallest of `buckets` that
  fits (one bucket: fixed length); `packed`: on the plan's packed rows (the shorter folded into rows of the longest),
  with attention blocks of the shorter packed lengths, as training packs."""
  to_device, replicated, data_sh = device_put_fn(setup)
  traces = [0]
  model = setup.model
  if packed:
    model = dataclasses.replace(model, encoder=model.encoder.clone(blocks=setup.packing.lengths[:-1]))
  step_fn = functools.partial(train_step, model=model, tx=setup.tx, dropout_key=dropout_key(setup))
  step = jax.jit(counted(step_fn, traces), in_shardings=(replicated, data_sh), out_shardings=(replicated, replicated),
                 donate_argnums=0)
  state = jax.device_put(setup.initial_state, replicated)

  def run(batches):
    nonlocal state
    for batch in batches:
      state, _ = step(state, to_device(batch))

  def host(plan: StepBatch) -> list[dict]:
    if plan.places is not None:
      return [make_step_batch(setup.data, plan.rows, plan.places, plan.size, plan.length, setup.packing.length,
                              setup.pad_id)]
    return [make_batch(setup.data, plan.rows, plan.size, buckets, setup.pad_id, length=plan.length)]

  return Runner(host, run, lambda: jax.block_until_ready(state), lambda: traces[0])


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
    sums, counts = grouped_loss(model.logits(p, batch, rng), batch, model.layout)
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

  host = lambda plan: task_sub_batches(setup.data, plan.rows, setup.batch_size, setup.buckets, setup.pad_id)
  return Runner(host, run, lambda: jax.block_until_ready(state), lambda: traces[0])


def torch_runner(setup: Setup, attention: str) -> Runner:
  """The PyTorch reference in train mode, each batch padded to its longest text."""
  tc, layout = setup.config.train, setup.model.layout
  model = common.torch_reference(setup.model.encoder.config, setup.weights_dir, layout.total("classification"),
                                 attention, setup.config.seed)
  model.train()
  optimizer = common.torch_optimizer(model, tc)
  head_dropout = setup.config.encoder.head_dropout

  def run(batches):
    for batch in batches:
      common.torch_train_step(model, optimizer, batch, layout.group_sizes, head_dropout, tc.grad_clip)

  return Runner(lambda plan: [common.pad_to_longest(setup.data, plan.rows, setup.pad_id)], run, lambda: None,
                lambda: None)


def make_runner(name: str, setup: Setup, args) -> Runner:
  if name in ("mtl_jax", "token_budget", "bucketed_fixed_rows"):  # the plan decides the batches' shape
    return jax_runner(setup, setup.buckets, packed=name == "mtl_jax")
  if name == "fixed_length":
    return jax_runner(setup, (max(setup.buckets),))
  if name == "per_task_pass":
    return per_task_runner(setup)
  if name == "pytorch":
    return torch_runner(setup, args.torch_attention)
  raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}")


# ---------------------------------------------------------------------------------------------------------------
# Measuring.

def plan_of(name: str) -> str:
  """Which batches a variant takes: packed (mtl_jax), token-budget batches, or fixed rows (every other)."""
  return {"mtl_jax": "packed", "token_budget": "budget"}.get(name, "fixed_rows")


def window_fn(runner: Runner, steps: list[StepBatch]) -> Callable[[], None]:
  """One window: every step's host batches built and run, then a wait for the device."""
  def window():
    for plan in steps:
      runner.run(runner.host(plan))
    runner.sync()
  return window


def warm(runner: Runner, steps: list[StepBatch], warmup: int) -> dict:
  """Untimed passes over the window's steps (JAX compiles every shape here): their seconds and compilations."""
  seconds, compiles, compile_s = common.timed(common.repeated(window_fn(runner, steps), warmup))
  jax_side = runner.traces() is not None
  return {"warmup_s": seconds, "xla_compiles_warmup": compiles if jax_side else None,
          "compile_s": compile_s if jax_side else None}


def token_counts(runner: Runner, steps: list[StepBatch], data: Encoded) -> tuple[int, int]:
  """(real, processed) tokens of `steps` as the variant batches them."""
  processed = sum(b["input_ids"].size for plan in steps for b in runner.host(plan))
  return sum(common.real_tokens(data, plan.rows) for plan in steps), processed


def figures(runner: Runner, steps: list[StepBatch], epoch: list[StepBatch], data: Encoded, seconds: list[float],
            compiles_timed: int, warmed: dict) -> dict:
  """The variant's throughput from its window times and the work one window does; its real-token fraction over an
  epoch of the pool."""
  real, processed = token_counts(runner, steps, data)
  epoch_real, epoch_processed = token_counts(runner, epoch, data)
  traces = runner.traces()
  return common.summarize(seconds, sum(len(plan.rows) for plan in steps), real, processed,
                          steps_per_window=len(steps), compiles=traces,
                          compiles_timed=None if traces is None else compiles_timed,
                          epoch_real_token_fraction=epoch_real / epoch_processed, **warmed)


def ratios(results: dict[str, dict]) -> None:
  """Adds `vs_<baseline>`: real tokens/s over the baseline's (the same examples, so also the examples/s ratio), and
  `paired_vs_<baseline>`: the median of the per-round ratios (`common.paired_ratio`)."""
  for r in results.values():
    for base in BASELINES:
      if base in results:
        r[f"vs_{base}"] = r["real_tokens_per_s"] / results[base]["real_tokens_per_s"]
        r[f"paired_vs_{base}"] = common.paired_ratio(r["window_s"], results[base]["window_s"])


def packing_summary(setup: Setup, batches: dict[str, list[StepBatch]]) -> dict:
  """mtl_jax's packing: rows per batch, their length, mean texts per batch, batches by packed row length."""
  mean = lambda plans: float(np.mean([len(p.rows) for p in plans]))
  share = lambda plans: {str(n): sum(p.length == n for p in plans) / len(plans) for n in setup.packing.lengths}
  return {"rows": setup.packing.rows[-1], "length": setup.packing.length, "lengths": list(setup.packing.lengths),
          "mean_examples_per_batch": {"epoch": mean(batches["packed_epoch"]), "window": mean(batches["packed"])},
          "batches_by_length": {"epoch": share(batches["packed_epoch"]), "window": share(batches["packed"])},
          "window_batches": [[len(p.rows), p.size, p.length] for p in batches["packed"]]}


def budget_summary(setup: Setup, batches: dict[str, list[StepBatch]]) -> dict:
  """token_budget's budget, buckets, batch size per bucket, mean examples per batch."""
  mean = lambda plans: float(np.mean([len(p.rows) for p in plans]))
  sizes = bucket_batch_sizes(setup.fine_buckets, setup.tokens_per_batch)
  return {"tokens_per_batch": setup.tokens_per_batch, "buckets": list(setup.fine_buckets),
          "batch_sizes": {str(length): size for length, size in sizes.items()},
          "mean_examples_per_batch": {"epoch": mean(batches["budget_epoch"]), "window": mean(batches["budget"])},
          "window_batches": [[len(p.rows), p.size, p.length] for p in batches["budget"]]}


def describe_batches(packing: dict, budget: dict) -> str:
  sizes = ", ".join(f"{length}: {size}" for length, size in budget["batch_sizes"].items())
  packed, mean = packing["mean_examples_per_batch"], budget["mean_examples_per_batch"]
  shares = packing["batches_by_length"]
  by_length = lambda part: ", ".join(f"{n}: {share:.0%}" for n, share in shares[part].items())
  return (f"mtl_jax: {packing['rows']} packed rows of {packing['length']} tokens per batch; mean {packed['epoch']:.1f} "
          f"texts per batch over an epoch, {packed['window']:.1f} in the window; batches by packed row length "
          f"{by_length('epoch')} over an epoch, {by_length('window')} in the window\n"
          f"token_budget: {budget['tokens_per_batch']} tokens per batch; examples per batch by bucket length "
          f"{{{sizes}}}; mean {mean['epoch']:.1f} examples per batch over an epoch, {mean['window']:.1f} in the window")


def settings(args, setup: Setup, batches: dict[str, list[StepBatch]]) -> dict:
  lengths = setup.data.lengths
  return {**vars(args), "length_buckets": list(setup.buckets), "fixed_length": max(setup.buckets),
          "packing": packing_summary(setup, batches), "token_budget": budget_summary(setup, batches),
          "group_sizes": list(setup.model.layout.group_sizes), "pooling": setup.config.encoder.pooling,
          "head_dropout": setup.config.encoder.head_dropout, "learning_rate": setup.config.train.learning_rate,
          "head_learning_rate": setup.config.train.head_learning_rate,
          "weight_decay": setup.config.train.weight_decay, "grad_clip": setup.config.train.grad_clip,
          "encoder_config": setup.model.encoder.config.to_dict(),
          "text_tokens": {"mean": float(lengths.mean()), "median": float(np.median(lengths)),
                          "max": int(lengths.max())},
          "window_examples": int(sum(len(p.rows) for p in batches["packed"])),
          "fixed_rows_batches": [[len(p.rows), common.longest(setup.data, p.rows)] for p in batches["fixed_rows"]],
          "batch_order": "the first `steps` packed batches of mtl_jax's sampler (MixtureOrder); their texts in "
                         "token-budget batches (token_budget) and in batches of batch_size rows (the other variants)"
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
  batches = plans(setup, args)
  report["settings"] = settings(args, setup, batches)
  if "pytorch" in names:
    report["settings"]["torch_threads"] = common.set_torch_threads(args.threads)
  runners, warmed = {}, {}
  for name in names:
    print(f"warming up {name} ...", file=sys.stderr, flush=True)
    runners[name] = make_runner(name, setup, args)
    warmed[name] = warm(runners[name], batches[plan_of(name)], args.warmup)
  print(f"{args.windows} timed rounds of {len(names)} windows ...", file=sys.stderr, flush=True)
  timed = common.interleaved_windows({name: window_fn(r, batches[plan_of(name)]) for name, r in runners.items()},
                                     args.windows)
  report["results"] = {name: figures(runners[name], batches[plan_of(name)], batches[plan_of(name) + "_epoch"],
                                     setup.data, *timed[name], warmed[name]) for name in names}
  ratios(report["results"])
  table = common.finish(report, args.output, BASELINES)
  return report, describe_batches(report["settings"]["packing"], report["settings"]["token_budget"]) + "\n" + table


def parse_args(argv=None) -> argparse.Namespace:
  parser = common.argument_parser(__doc__, VARIANTS, DEFAULT_OUTPUT)
  add = parser.add_argument
  add("--steps", type=int, default=6, help="mtl_jax's training steps (packed batches) per window; their texts are "
      "every variant's window")
  add("--warmup", type=int, default=1, help="untimed passes over the window's batches first (compiles)")
  add("--num_texts", type=int, default=4096, help="texts drawn from the corpora (the sampler's pool)")
  add("--labels", choices=common.LABEL_MODES, default="one", help="each text labelled for one task, or for all")
  add("--group_by_length", action=argparse.BooleanOptionalAction, default=True,
      help="batches of similar length, as config.data.group_by_length")
  add("--length_buckets", default="", help="the fixed-row variants' buckets, comma-separated; default: "
      "configs/three_task.py's")
  add("--buckets", default=",".join(map(str, FINE_BUCKETS)), help="token_budget's buckets, comma-separated (the "
      "largest: the largest length bucket)")
  add("--tokens_per_batch", type=int, default=0, help="token_budget's budget (config.data.tokens_per_batch); 0: the "
      "budget whose batches hold --batch_size examples on average over the pool")
  return parser.parse_args(argv)


if __name__ == "__main__":
  common.main(parse_args, run)
