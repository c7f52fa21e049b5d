"""Training and evaluation: `train_and_evaluate(config, workdir)`.

The function is one orchestrator in sections (encoder, mesh, memory check, tasks and data -> model and optimizer ->
shard and transfer -> update step -> resume -> evaluation -> loop); the pieces it calls are small functions in this
module and its neighbours.
"""

import dataclasses
import difflib
import json
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from mtl_jax import checkpoint, corpora, evaluation, weighting
from mtl_jax import metrics as metrics_lib
from mtl_jax.data import Table, load_splits, load_test
from mtl_jax.encoder import (
  DEFAULT_PRETRAINED,
  RANDOM_PRESETS,
  Encoder,
  EncoderConfig,
  load_pretrained,
  resolve_encoder_dir,
)
from mtl_jax.errors import UserError
from mtl_jax.heads import POOLINGS, split_groups
from mtl_jax.input_pipeline import Encoded, concat, encode_table, eval_indices, make_batch
from mtl_jax.losses import grouped_cross_entropy, label_counts, task_means
from mtl_jax.model import Model
from mtl_jax.resources import check_memory
from mtl_jax.sampling import MixtureOrder, bucket_batch_sizes, corpus_probabilities, epoch_examples_for
from mtl_jax.sharding import DEFAULT_RULES, batch_divisor, batch_sharding, make_mesh, process_rows, tree_shardings
from mtl_jax.tasks import Layout, chosen_tasks, layout_from_config
from mtl_jax.tokenizer import load_tokenizer

METRIC_NAMES = ("main", "loss", *metrics_lib.METRIC_NAMES, *evaluation.TAGGING_METRICS)


# ---------------------------------------------------------------------------------------------------------------
# Encoder, tokenizer, optimizer.

def tokenizer_dir(enc_cfg) -> str:
  """The directory of `config.encoder`'s tokenizer: config.encoder.tokenizer, else the encoder's own (the packaged
  MiniLM's for a random preset)."""
  return resolve_encoder_dir(enc_cfg.tokenizer or (DEFAULT_PRETRAINED if enc_cfg.name in RANDOM_PRESETS
                                                   else enc_cfg.name))


def build_encoder(enc_cfg) -> tuple[EncoderConfig, dict | None, object]:
  """(architecture, pretrained params or None, tokenizer) for `config.encoder`."""
  random = enc_cfg.name in RANDOM_PRESETS  # weights first: a directory without them is named before its tokenizer
  config, params = (None, None) if random else load_pretrained(resolve_encoder_dir(enc_cfg.name))
  tokenizer = load_tokenizer(tokenizer_dir(enc_cfg))
  if random:
    config = EncoderConfig(vocab_size=len(tokenizer), **RANDOM_PRESETS[enc_cfg.name])
  if len(tokenizer) > config.vocab_size:
    raise UserError(f"config.encoder.tokenizer: the tokenizer has {len(tokenizer)} tokens but the encoder embeds "
                    f"only {config.vocab_size}")
  if enc_cfg.dropout >= 0:
    config = dataclasses.replace(config, dropout_rate=enc_cfg.dropout, attention_dropout_rate=enc_cfg.dropout)
  return config, params, tokenizer


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def check_config(config) -> None:
  """Values the code below relies on, checked up front so a mistake is one line, not a traceback mid-run."""
  tc, buckets = config.train, config.data.length_buckets
  checks = [
      ("encoder.pooling", config.encoder.pooling in POOLINGS, f"one of {POOLINGS}"),
      ("encoder.dtype", config.encoder.dtype in DTYPES, f"one of {tuple(DTYPES)}"),
      ("encoder.head_dropout", 0 <= config.encoder.head_dropout < 1, "a number in [0, 1)"),
      ("data.length_buckets", len(buckets) > 0 and all(isinstance(b, int) and b > 2 for b in buckets),
       "a non-empty list of lengths > 2"),
      ("data.tokens_per_batch", isinstance(config.data.tokens_per_batch, int) and config.data.tokens_per_batch >= 0,
       "an integer >= 0 (0 = batches of train.batch_size rows)"),
      ("train.batch_size", tc.batch_size > 0, "a number > 0"),
      ("train.grad_accumulation", tc.grad_accumulation > 0, "a number > 0 (1 = no accumulation)"),
      ("train.loss_weighting", tc.loss_weighting in weighting.METHODS, f"one of {weighting.METHODS}"),
      ("train.weighting_learning_rate", tc.weighting_learning_rate > 0, "a number > 0"),
      ("train.eval_batch_size", tc.eval_batch_size > 0, "a number > 0"),
      ("train.log_every", tc.log_every > 0, "a number > 0"),
      ("train.tensorboard", isinstance(tc.tensorboard, bool), "True or False"),
      ("train.eval_every", tc.eval_every >= 0, "a number >= 0 (0 = once per epoch)"),
      ("train.checkpoint_every", tc.checkpoint_every >= 0, "a number >= 0 (0 = at evaluations only)"),
      ("train.memory_limit_gb", tc.memory_limit_gb >= 0, "a number >= 0 (0 = the device's memory)"),
      ("train.best_mode", tc.best_mode in ("max", "min"), "'max' or 'min'"),
  ]
  for field, ok, expected in checks:
    if not ok:
      value = eval(f"config.{field}", {"config": config})  # noqa: S307 - a dotted path of our own, for the message
      raise UserError(f"config.{field}: expected {expected}, found {value!r}")


def learning_rate_schedule(train_cfg, total_steps: int) -> optax.Schedule:
  """Linear warmup to the peak, then linear or cosine decay to 0 at the last step (or constant)."""
  peak, warmup = train_cfg.learning_rate, min(train_cfg.warmup_steps, total_steps)
  decay_steps = max(total_steps - warmup, 1)
  decays = {"linear": optax.linear_schedule(peak, 0.0, decay_steps),
            "cosine": optax.cosine_decay_schedule(peak, decay_steps),
            "constant": optax.constant_schedule(peak)}
  if train_cfg.decay not in decays:
    raise UserError(f"config.train.decay: expected one of {sorted(decays)}, found {train_cfg.decay!r}")
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decays[train_cfg.decay]], [warmup])


def make_optimizer(train_cfg, schedule: optax.Schedule) -> optax.GradientTransformation:
  """AdamW with gradient clipping; no weight decay on biases and LayerNorm scales (1-d parameters)."""
  decay_mask = lambda params: jax.tree.map(lambda x: x.ndim > 1, params)
  clip = [optax.clip_by_global_norm(train_cfg.grad_clip)] if train_cfg.grad_clip > 0 else []
  return optax.chain(*clip, optax.adamw(schedule, weight_decay=train_cfg.weight_decay, mask=decay_mask))


# ---------------------------------------------------------------------------------------------------------------
# Steps (jitted in train_and_evaluate with explicit shardings).

def train_step(state: dict, batch: dict, *, model: Model, tx: optax.GradientTransformation, dropout_key: jax.Array,
               accumulation: int = 1, loss_weighting: str = "static"):
  """One AdamW step on the grouped loss; returns the new state and the global per-task (sums, counts).

  With `accumulation` k the batch is processed as k micro-batches (row i goes to micro-batch i mod k, so each
  device keeps its share of every one) whose gradients are summed before the update. Every micro-batch divides by the
  whole batch's label counts, so the summed loss and gradient are those of the full batch (up to float rounding).
  `loss_weighting` (see mtl_jax/weighting.py) turns the task losses into the update; "pcgrad" takes one backward
  pass per task and reports the fraction of task pairs whose encoder gradients conflict.
  """
  rng = jax.random.fold_in(dropout_key, state["step"])
  counts = label_counts(batch, model.layout)
  weights = jnp.asarray(model.layout.weights, jnp.float32)

  def task_losses(params, micro, micro_rng):  # this micro-batch's share of each task's mean loss, and loss sums
    sums, _ = grouped_cross_entropy(model.logits(params, micro, micro_rng), micro, model.layout)
    return task_means(sums, counts), sums

  def loss_and_grads(params, micro, micro_rng):  # ((objective, sums), grads); PCGrad: grads per task
    if loss_weighting == "pcgrad":
      losses, vjp, sums = jax.vjp(lambda p: task_losses(p, micro, micro_rng), params, has_aux=True)
      task_grads = jax.lax.map(lambda cotangent: vjp(cotangent)[0], jnp.diag(weights))
      return (jnp.sum(weights * losses), sums), task_grads

    def objective(p):
      losses, sums = task_losses(p, micro, micro_rng)
      return weighting.objective(losses, counts > 0, weights, p.get("weighting", {}), 1 / accumulation), sums
    return jax.value_and_grad(objective, has_aux=True)(params)

  if accumulation == 1:
    (loss, sums), grads = loss_and_grads(state["params"], batch, rng)
  else:
    micro = jax.tree.map(lambda x: jnp.swapaxes(x.reshape(x.shape[0] // accumulation, accumulation, *x.shape[1:]),
                                                0, 1), batch)

    def add(carry, xs):
      return jax.tree.map(jnp.add, carry, loss_and_grads(state["params"], xs[0], jax.random.fold_in(rng, xs[1]))), None

    shapes = jax.eval_shape(loss_and_grads, state["params"], jax.tree.map(lambda x: x[0], micro), rng)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    ((loss, sums), grads), _ = jax.lax.scan(add, zeros, (micro, jnp.arange(accumulation)))
  out = {"loss": loss, "sums": sums, "counts": counts}
  if loss_weighting == "pcgrad":  # surgery on the shared encoder's gradients; the heads' are summed
    encoder, gram = weighting.pcgrad(grads["encoder"], jax.random.fold_in(rng, weighting.ORDER_SALT))
    grads = {**jax.tree.map(lambda g: g.sum(0), grads), "encoder": encoder}
    out["gradient_conflicts"] = weighting.conflict_fraction(gram)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state,
               "step": state["step"] + 1}
  return new_state, out


def eval_step(params: dict, batch: dict, *, model: Model):
  """Classification probabilities [B, sum K], tagging argmax per tagging task [B, L, n_tag], and the global
  per-task loss (sums, counts)."""
  logits = model.logits(params, batch)
  sums, counts = grouped_cross_entropy(logits, batch, model.layout)
  out = {}
  if "classification" in logits:
    out["classification"] = model.probabilities(logits)["classification"]
  if "tagging" in logits:
    groups = split_groups(logits["tagging"], model.layout, "tagging").values()
    out["tagging"] = jnp.stack([jnp.argmax(g, axis=-1) for g in groups], axis=-1).astype(jnp.int32)
  return out, sums, counts


def labelled_rows(data: Encoded, t: int) -> np.ndarray:
  """The rows with a label for the classification task at position `t`: the rows its loss and metrics count."""
  return (data.labels[:, t] >= 0) & (data.weights[:, t] > 0)


def word_predictions(outputs: dict, layout: Layout, t: int) -> list[np.ndarray]:
  """The predicted tag id of each word, per example, for the tagging task at position `t`."""
  column = layout.of_kind("tagging").index(t)
  return [p[:, column] for p in outputs["tagging"]]


def task_metrics(data: Encoded, outputs: dict, loss_sums: np.ndarray, loss_counts: np.ndarray,
                 layout: Layout) -> dict[str, dict[str, float]]:
  """Host-side metrics per task from the gathered outputs (rows without a label for a task are left out)."""
  result = {}
  for t, task in enumerate(layout.tasks):
    if task.kind == "classification":
      labelled = labelled_rows(data, t)
      probs = outputs["classification"][labelled, layout.offsets[t]:layout.offsets[t] + task.num_classes]
      m = metrics_lib.classification_metrics(data.labels[labelled, t], probs)
    else:
      m = evaluation.tagging_metrics(data, word_predictions(outputs, layout, t), t, task)
    m["loss"] = float(loss_sums[t] / loss_counts[t]) if loss_counts[t] > 0 else float("nan")
    m["main"] = m[task.main_metric]
    result[task.name] = m
  return result


def flatten_metrics(per_task: dict[str, dict[str, float]], prefix: str = "eval") -> dict[str, float]:
  """{task: {metric: v}} -> {'eval/<task>/<metric>': v, 'eval/mean/<metric>': .., 'eval/std/<metric>': ..}."""
  flat = {f"{prefix}/{task}/{k}": v for task, m in per_task.items() for k, v in m.items()}
  overall = {task: {k: v for k, v in m.items() if "/" not in k} for task, m in per_task.items()}  # no per-type F1
  flat.update({f"{prefix}/{k}": v for k, v in metrics_lib.mean_and_std(overall).items()})
  return flat


def evaluate_examples(step, batch, data: Encoded, layout: Layout, batch_size: int,
                      split: str = "eval") -> tuple[dict[str, dict[str, float]], dict[str, float], dict]:
  """Every example of `data` once, in batches of similar length: `batch(idx)` builds the batch of rows `idx` (padded
  to `batch_size`), `step(batch)` is `eval_step` with the params bound. Returns the metrics per task, the flat
  metrics (`flatten_metrics` with prefix `split`) and the gathered outputs: classification probabilities
  [N, sum K] and, per example, the predicted tag of each word [n_words, n_tagging_tasks]."""
  outputs = {"classification": np.zeros((len(data), layout.total("classification")), np.float32),
             "tagging": [None] * len(data)}
  sums, counts = 0.0, 0.0
  for idx in eval_indices(data.lengths, batch_size):
    out, s, c = step(batch(idx))
    if "classification" in out:
      outputs["classification"][idx] = np.asarray(out["classification"])[:len(idx)]
    if "tagging" in out:
      tags = np.asarray(out["tagging"])
      for row, i in enumerate(idx):
        outputs["tagging"][i] = tags[row, data.starts[i]]  # [n_words, n_tag]: the prediction of each word
    sums, counts = sums + np.asarray(s), counts + np.asarray(c)
  per_task = task_metrics(data, outputs, sums, counts, layout)
  return per_task, flatten_metrics(per_task, split), outputs


SHOWN = {"main": "main", "loss": "loss", "accuracy": "acc", "balanced_accuracy": "bal_acc", "f1_macro": "f1_macro",
         "mcc": "mcc", "auroc_macro": "auroc", "precision": "span_p", "recall": "span_r", "f1": "span_f1"}


def format_eval_lines(step: int, per_task: dict[str, dict[str, float]], flat: dict[str, float],
                      split: str = "eval") -> list[str]:
  """One line per task and one for the mean, as Flair prints its dev scores."""
  width = max(len(name) for name in [*per_task, "mean"])
  mean = {k.split("/", 2)[2]: v for k, v in flat.items() if k.startswith(f"{split}/mean/")}
  line = lambda name, m: f"{split} step {step:>6} | {name:<{width}} | " + "  ".join(
      f"{short} {m[k]:.4f}" for k, short in SHOWN.items() if k in m)
  return [line(name, m) for name, m in per_task.items()] + [line("mean", mean)]


# ---------------------------------------------------------------------------------------------------------------
# Workdir bookkeeping.

class MetricsLog:
  """Appends one JSON object per event to workdir/metrics.jsonl and, when asked, the same scalars to TensorBoard
  event files in workdir/tensorboard (tensorboardX: no TensorFlow needed). Process 0 only."""

  def __init__(self, workdir: str, enabled: bool):
    self.path, self.enabled = os.path.join(workdir, "metrics.jsonl"), enabled
    self.board_dir, self.board = os.path.join(workdir, "tensorboard"), None

  def start(self, step: int, config_text: str, tensorboard: bool) -> None:
    """On (re)start from the checkpoint at `step`: drop metrics.jsonl events newer than it, so the history matches
    an uninterrupted run; the TensorBoard writer's purge_step makes TensorBoard drop its newer events likewise."""
    if not self.enabled:
      return
    if os.path.exists(self.path):
      with open(self.path, encoding="utf-8") as f:
        kept = [line for line in f if _event_step(line) <= step]
      with open(self.path, "w", encoding="utf-8") as f:
        f.writelines(kept)
    if tensorboard:
      from tensorboardX import SummaryWriter
      self.board = SummaryWriter(self.board_dir, purge_step=step + 1 if step else None)
      self.board.add_text("config", f"```\n{config_text}\n```", step)

  def write(self, step: int, values: dict) -> None:
    if not self.enabled:
      return
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps({"step": step, **{k: _jsonable(v) for k, v in values.items()}}) + "\n")
    if self.board is not None:
      for k, v in values.items():
        if _jsonable(v) is not None:
          self.board.add_scalar(k, float(v), step)
      self.board.flush()

  def close(self) -> None:
    if self.board is not None:
      self.board.close()


def _event_step(line: str) -> float:
  """The step of one metrics.jsonl line; a torn line (a crash mid-write) counts as after every checkpoint."""
  try:
    return json.loads(line)["step"]
  except (json.JSONDecodeError, KeyError, TypeError):
    return float("inf")


def _jsonable(v):
  v = float(v)
  return v if np.isfinite(v) else None


def check_metric_name(name: str, layout: Layout) -> None:
  known = [f"eval/{t}/{m}" for t in (*layout.names, "mean", "std") for m in METRIC_NAMES]
  if name not in known:
    hint = difflib.get_close_matches(name, known, n=1)
    raise UserError(f"config.train.best_metric: unknown metric {name!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "; e.g. 'eval/mean/accuracy'"))


def update_tracker(tracker: dict, flat: dict[str, float], tc) -> bool:
  """Best value and early-stopping counters after an evaluation; True when this evaluation is the best so far."""
  tracker["metrics"] = flat
  value = flat[tc.best_metric]
  if not np.isfinite(value):  # e.g. a task without labels in the validation data: no evidence either way
    log(f"warning: {tc.best_metric} is {value}; this evaluation neither improves nor counts toward patience")
    return False
  if tracker["best"] is None or (value > tracker["best"] if tc.best_mode == "max" else value < tracker["best"]):
    tracker.update(best=value, bad_evals=0)
    return True
  tracker["bad_evals"] += 1
  tracker["stopped"] = tc.patience > 0 and tracker["bad_evals"] >= tc.patience
  if tracker["stopped"]:
    log(f"early stop: {tc.best_metric} did not improve for {tc.patience} evaluations")
  return False


class TrainWindow:
  """Training losses accumulated on device between two log events (no host sync per step), and on the host the
  examples and tokens: real (non-pad) and processed (batch x padded length)."""

  def __init__(self, state: dict | None = None):
    self.sums, self.counts, self.loss, self.steps, self.examples = 0.0, 0.0, 0.0, 0, 0
    self.real_tokens, self.tokens, self.extras = 0, 0, {}  # extras: optional scalars of the step, e.g. PCGrad's
    if state:  # a window interrupted by a checkpoint between two log events, so the resumed log is the same
      self.sums, self.counts = (np.asarray(state[k], np.float32) for k in ("sums", "counts"))
      self.loss, self.steps, self.examples = np.float32(state["loss"]), state["steps"], state["examples"]
      self.real_tokens, self.tokens = state.get("real_tokens", 0), state.get("tokens", 0)
      self.extras = {k: np.float32(v) for k, v in state.get("extras", {}).items()}
    self.start = time.perf_counter()

  def state(self) -> dict | None:
    """The accumulated values as JSON (None when empty), to travel with a checkpoint."""
    if not self.steps:
      return None
    return {"sums": np.asarray(self.sums).tolist(), "counts": np.asarray(self.counts).tolist(),
            "loss": float(self.loss), "steps": self.steps, "examples": self.examples,
            "real_tokens": self.real_tokens, "tokens": self.tokens,
            "extras": {k: float(v) for k, v in self.extras.items()}}

  def add(self, out: dict, examples: int, real_tokens: int, tokens: int) -> None:
    self.sums, self.counts, self.loss = self.sums + out["sums"], self.counts + out["counts"], self.loss + out["loss"]
    self.steps, self.examples = self.steps + 1, self.examples + examples
    self.real_tokens, self.tokens = self.real_tokens + real_tokens, self.tokens + tokens
    for k in out.keys() - {"loss", "sums", "counts"}:
      self.extras[k] = self.extras.get(k, 0.0) + out[k]

  def task_losses(self, layout: Layout) -> dict[str, float]:
    return dict(zip(layout.names, np.asarray(task_means(self.sums, self.counts)).tolist()))

  def check(self, step: int, layout: Layout) -> None:
    """Raises when a loss since the last log event was NaN/inf (a NaN stays in the sums), before anything is saved."""
    if self.steps and not np.isfinite(float(self.loss)):
      raise UserError(f"non-finite training loss by step {step} (task losses over the last {self.steps} steps: "
                      f"{self.task_losses(layout)}); nothing from these steps was saved. Lower "
                      "config.train.learning_rate, or look for extreme weights in the data")

  def close(self, step: int, layout: Layout) -> dict[str, float]:
    """The window's mean objective, per-task losses (sums over counts) and throughput; raises on NaN/inf."""
    self.check(step, layout)
    loss, task_loss = float(self.loss) / self.steps, self.task_losses(layout)
    return {"train/loss": loss, "train/examples_per_sec": self.examples / (time.perf_counter() - self.start),
            "train/real_token_fraction": self.real_tokens / max(self.tokens, 1),
            **{f"train/{name}/loss": v for name, v in task_loss.items()},
            **{f"train/{k}": float(v) / self.steps for k, v in self.extras.items()}}


def learned_weights(params: dict, layout: Layout) -> dict[str, float]:
  """`train/<task>/weight` of a loss weighting with learned parameters (uncertainty: w_t exp(-s_t)); else empty."""
  if "weighting" not in params:
    return {}
  values = np.asarray(weighting.effective_weights(jnp.asarray(layout.weights), params["weighting"])).tolist()
  return {f"train/{name}/weight": v for name, v in zip(layout.names, values)}


class Preemption:
  """SIGTERM (a preemptible VM going away) asks the loop to checkpoint at the next step boundary and return.

  With several processes, the processes agree at log steps (`sync`: one small all-gather there, no host sync in
  between): all of them stop at the first log step after any got the signal, and save that step together."""

  def __init__(self):
    self.signalled = False
    self._previous = signal.signal(signal.SIGTERM, self._request)

  def _request(self, signum, frame) -> None:
    self.signalled = True

  def requested(self, sync: bool) -> bool:
    if jax.process_count() == 1:
      return self.signalled
    if not sync:
      return False
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(self.signalled))))

  def close(self) -> None:
    signal.signal(signal.SIGTERM, self._previous)


def log(message: str) -> None:
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


# ---------------------------------------------------------------------------------------------------------------

def load_data(config, tokenizer, max_length: int) -> tuple[Layout, dict[str, Encoded], Encoded, Encoded | None]:
  """(layout, training examples by corpus name, validation, test or None): one table (`config.data.train`) whose
  rows label every task, or a corpus per task (`config.tasks.<name>.data`)."""
  chosen = chosen_tasks(config)
  if not config.data.get("train"):
    only = config.copy_and_resolve_references()
    with only.unlocked():
      for name in set(config.tasks.keys()) - set(chosen):
        del only.tasks[name]
    return corpora.load(only, tokenizer, max_length)
  full = layout_from_config(config)  # every labels column is read and checked, the chosen ones kept
  keep = [i for i, name in enumerate(full.names) if name in chosen]
  tables = (*load_splits(config.data, full, config.seed), load_test(config.data, full))  # test: None without one
  train, validation, test = (None if t is None else encode_table(
      Table(t.texts, t.labels[:, keep], t.weights[:, keep]), tokenizer, max_length) for t in tables)
  return Layout(tuple(full.tasks[i] for i in keep)), {"table": train}, validation, test


def mixture_order(config, layout: Layout, parts: dict[str, Encoded], lengths: np.ndarray,
                  multiple: int = 1) -> MixtureOrder:
  """The step-indexed batch order over the corpora (named by their tasks, "pos+ner"), with `config.sampling`'s
  strategy and epoch definition, and `config.data.tokens_per_batch`'s budget (batch sizes per bucket are multiples
  of `multiple`: the batch shards x train.grad_accumulation)."""
  sc, tc = config.sampling, config.train
  names, sizes = list(parts), [len(p) for p in parts.values()]
  if sum(sizes) < tc.batch_size:
    raise UserError(f"config.train.batch_size: {tc.batch_size} is larger than the {sum(sizes)} training examples")
  p = corpus_probabilities(sizes, sc.strategy, sc.temperature, list(sc.weights) or None, names)
  epoch_examples = None
  if sc.epoch_task:
    if sc.epoch_task not in layout.names:
      raise UserError(f"config.sampling.epoch_task: unknown task {sc.epoch_task!r}; tasks are {list(layout.names)}")
    i = next(i for i, n in enumerate(names) if sc.epoch_task in n.split("+"))
    epoch_examples = epoch_examples_for(sizes[i], p[i], sc.epoch_task)
  return MixtureOrder(sizes, p, tc.batch_size, config.seed, lengths, config.data.group_by_length,
                      epoch_examples=epoch_examples, names=names, buckets=config.data.length_buckets,
                      tokens_per_batch=config.data.tokens_per_batch, multiple=multiple)


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns the last evaluation's metrics."""
  os.makedirs(workdir, exist_ok=True)
  tc = config.train

  # --- Encoder, mesh, memory, tasks and data --------------------------------------------------------------------
  check_config(config)
  enc_config, pretrained, tokenizer = build_encoder(config.encoder)
  max_length = max(config.data.length_buckets)
  if max_length > enc_config.max_position_embeddings:
    raise UserError(f"config.data.length_buckets: {max_length} exceeds the encoder's "
                    f"{enc_config.max_position_embeddings} positions")
  mesh = make_mesh(config.mesh)
  for field, multiple in (("batch_size", tc.grad_accumulation), ("eval_batch_size", 1)):
    if tc[field] % (multiple * batch_divisor(mesh)):
      micro = f" x {multiple} micro-batches (train.grad_accumulation)" if multiple > 1 else ""
      raise UserError(f"config.train.{field}: {tc[field]} is not a multiple of the {batch_divisor(mesh)} batch "
                      f"shards (mesh data x fsdp){micro}")
  multiple = tc.grad_accumulation * batch_divisor(mesh)  # token-budget batch sizes are multiples of this
  if config.data.tokens_per_batch:  # a budget too small for the longest bucket fails here, naming the field
    log(f"batches: {bucket_batch_sizes(config.data.length_buckets, config.data.tokens_per_batch, multiple)} "
        f"examples per bucket length (config.data.tokens_per_batch={config.data.tokens_per_batch})")
  # The memory estimate before minutes of data loading:
  log(check_memory(config, enc_config, batch_divisor(mesh), mesh.shape["fsdp"] * mesh.shape["model"]))
  layout, train_parts, val_data, test_data = load_data(config, tokenizer, max_length)
  check_metric_name(tc.best_metric, layout)
  train_data = concat(list(train_parts.values()))
  log(f"data: {len(train_data)} training examples ({train_data.truncated} cut to {max_length} tokens), "
      f"{len(val_data)} validation, {len(test_data) if test_data else 0} test; "
      f"tasks {dict(zip(layout.names, layout.group_sizes))}")
  order = mixture_order(config, layout, train_parts, train_data.lengths, multiple)
  total_steps = tc.steps if tc.steps > 0 else max(int(round(tc.epochs * order.per_epoch)), 1)
  eval_every = tc.eval_every or order.per_epoch

  # --- Model and optimizer ---------------------------------------------------------------------------------------
  model = Model(Encoder(enc_config, DTYPES[config.encoder.dtype], config.encoder.remat), layout, config.encoder.pooling,
                config.encoder.head_dropout)
  schedule = learning_rate_schedule(tc, total_steps)
  tx = weighting.optimizer(tc.loss_weighting, make_optimizer(tc, schedule), tc.weighting_learning_rate)
  learned = weighting.init(tc.loss_weighting, len(layout.tasks))  # e.g. uncertainty weighting's log-variances
  init_params = lambda key: {**model.init(key), **({"weighting": learned} if learned else {})}
  model_params = lambda params: {k: params[k] for k in ("encoder", "heads")}  # what best/ keeps, for prediction
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))

  # --- Shard and transfer: params and optimizer state are created in place, already sharded -----------------------
  rules = tuple(tuple(r) for r in config.mesh.rules) or DEFAULT_RULES
  abstract_params = jax.eval_shape(init_params, init_key)
  param_sh = tree_shardings(abstract_params, mesh, rules)
  opt_sh = tree_shardings(jax.eval_shape(tx.init, abstract_params), mesh, rules)
  replicated = NamedSharding(mesh, P())
  state_sh = {"params": param_sh, "opt_state": opt_sh, "step": replicated}
  params = jax.jit(init_params, out_shardings=param_sh)(init_key)
  if pretrained is not None:
    params["encoder"] = jax.device_put(pretrained, param_sh["encoder"])
  state = {"params": params, "opt_state": jax.jit(tx.init, out_shardings=opt_sh)(params),
           "step": jax.device_put(jnp.asarray(0, jnp.int32), replicated)}

  # --- Update and eval steps ------------------------------------------------------------------------------------------
  data_sh, pad_id = batch_sharding(mesh), tokenizer.pad_token_id or 0
  p_train_step = jax.jit(lambda s, b: train_step(s, b, model=model, tx=tx, dropout_key=dropout_key,
                                                 accumulation=tc.grad_accumulation, loss_weighting=tc.loss_weighting),
                         in_shardings=(state_sh, data_sh), out_shardings=(state_sh, replicated), donate_argnums=0)
  p_eval_step = jax.jit(lambda p, b: eval_step(p, b, model=model), in_shardings=(model_params(param_sh), data_sh),
                        out_shardings=replicated)

  def global_batch(data: Encoded, idx: np.ndarray, size: int, length: int | None = None) -> dict:
    """The batch of rows `idx` (padded to `size` rows and to `length`, or to the smallest bucket that fits) as
    global arrays; this process builds and transfers only its own rows."""
    local = make_batch(data, idx, size, config.data.length_buckets, pad_id, process_rows(data_sh, size), length)
    return {k: jax.make_array_from_process_local_data(data_sh, v, (size, *v.shape[1:])) for k, v in local.items()}

  def evaluate(params, data: Encoded, split: str = "eval") -> tuple[dict, dict]:
    per_task, flat, _ = evaluate_examples(lambda b: p_eval_step(params, b),
                                          lambda idx: global_batch(data, idx, tc.eval_batch_size), data, layout,
                                          tc.eval_batch_size, split)
    return per_task, flat

  # --- Resume from the workdir's latest checkpoint -------------------------------------------------------------------
  meta_base = {"tasks": layout.to_dict(), "encoder": enc_config.to_dict(), "pooling": config.encoder.pooling,
               "dtype": config.encoder.dtype, "length_buckets": list(config.data.length_buckets),
               "loss_weighting": tc.loss_weighting}
  tok_files = checkpoint.tokenizer_files(tokenizer)
  latest, best = (checkpoint.manager(os.path.join(workdir, d)) for d in (checkpoint.LATEST, checkpoint.BEST))
  history = MetricsLog(workdir, jax.process_index() == 0)
  tracker = {"best": None, "bad_evals": 0, "stopped": False, "metrics": {}}
  start = latest.latest_step() or 0
  if start:
    saved = checkpoint.restore_meta(latest, start)
    if changed := [k for k in meta_base if saved.get(k) != meta_base[k]]:
      raise UserError(f"{workdir}: holds a run with another {', '.join(changed)}; use a new --workdir")
    state.update(checkpoint.restore_arrays(latest, start, {
        "params": checkpoint.abstract(state["params"], param_sh),
        "opt_state": checkpoint.abstract(state["opt_state"], opt_sh)}))
    state["step"] = jax.device_put(jnp.asarray(start, jnp.int32), replicated)
    tracker = saved["tracker"]
    log(f"resumed from {latest.directory} at step {start}")
  history.start(start, config.to_json_best_effort(indent=2), tc.tensorboard)  # later events are written again
  save_meta = lambda step: {**meta_base, "step": step, "tracker": tracker, "config": config.to_json()}

  # --- Train loop ---------------------------------------------------------------------------------------------------
  bar = tqdm.tqdm(total=total_steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
                  disable=jax.process_index() != 0)
  window, shapes, lengths = TrainWindow(tracker.pop("window", None)), set(), train_data.lengths
  preemption = Preemption()
  try:
    for step in range(start + 1, total_steps + 1):
      if tracker["stopped"]:
        break
      planned = order.batch(step - 1)  # rows, batch size (train.batch_size, or B_L with a token budget), length
      idx, size = planned.rows, planned.size
      batch = global_batch(train_data, idx, size, planned.length)
      state, out = p_train_step(state, batch)
      length = batch["input_ids"].shape[1]  # the padded length
      window.add(out, len(idx), int(np.minimum(lengths[idx], length).sum()), size * length)
      shapes.add((size, length))  # the train step compiles once per batch shape
      bar.update(1)
      is_eval = step % eval_every == 0 or step == total_steps
      if step % tc.log_every == 0 or is_eval:
        values = window.close(step, layout)
        history.write(step, {**values, **learned_weights(state["params"], layout),
                             "train/learning_rate": schedule(step - 1), "train/compiles": len(shapes)})
        bar.set_postfix(loss=f"{values['train/loss']:.4f}", ex_per_s=f"{values['train/examples_per_sec']:.0f}")
        window = TrainWindow()

      if is_eval:
        per_task, flat = evaluate(model_params(state["params"]), val_data)
        history.write(step, flat)
        for line in format_eval_lines(step, per_task, flat):
          log(line)
        improved = update_tracker(tracker, flat, tc)
        if improved:  # best before latest: after a crash between the two, the resumed run redoes this evaluation
          checkpoint.save(best, step, {"params": model_params(state["params"])}, save_meta(step), tok_files)
        if test_data is not None and (step == total_steps or tracker["stopped"]):  # the best model on test
          best_params = checkpoint.restore_arrays(best, best.latest_step(), {
              "params": checkpoint.abstract(model_params(state["params"]), model_params(param_sh))})["params"]
          test_tasks, test_flat = evaluate(best_params, test_data, split="test")
          history.write(step, test_flat)
          for line in format_eval_lines(step, test_tasks, test_flat, split="test"):
            log(line)
          tracker["test"] = test_flat

      preempted = preemption.requested(sync=step % tc.log_every == 0 or is_eval)
      if is_eval or preempted or (tc.checkpoint_every and step % tc.checkpoint_every == 0):
        window.check(step, layout)
        tracker["window"] = window.state()
        checkpoint.save(latest, step, {"params": state["params"], "opt_state": state["opt_state"]},
                        save_meta(step), tok_files)
        tracker.pop("window")
      if preempted:
        log(f"SIGTERM: saved step {step} to {latest.directory}; the same command resumes from there")
        break
  finally:
    preemption.close()
    history.close()
  bar.close()
  return {**tracker["metrics"], **tracker.get("test", {})}
