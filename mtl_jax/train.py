"""Training and evaluation: `train_and_evaluate(config, workdir)`.

The function is one orchestrator in sections (tasks and data -> encoder -> mesh -> model and optimizer -> shard and
transfer -> update step -> resume -> evaluation -> loop); the pieces it calls are small functions in this module and
its neighbours.
"""

import dataclasses
import difflib
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from jax.sharding import NamedSharding, PartitionSpec as P

from mtl_jax import checkpoint, metrics as metrics_lib
from mtl_jax.data import load_splits
from mtl_jax.encoder import (DEFAULT_PRETRAINED, RANDOM_PRESETS, Encoder, EncoderConfig, load_pretrained,
                             resolve_encoder_dir)
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import Encoded, TrainOrder, encode_table, eval_indices, make_batch
from mtl_jax.losses import grouped_cross_entropy, task_means, total_loss
from mtl_jax.model import Model
from mtl_jax.sharding import batch_divisor, batch_sharding, make_mesh, tree_shardings
from mtl_jax.tasks import Layout, layout_from_config

METRIC_NAMES = ("loss", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "f05_macro",
                "mcc", "auroc_macro")


# ---------------------------------------------------------------------------------------------------------------
# Encoder, tokenizer, optimizer.

def build_encoder(enc_cfg) -> tuple[EncoderConfig, dict | None, str]:
  """(architecture, pretrained params or None, tokenizer directory) for `config.encoder`."""
  tokenizer_dir = resolve_encoder_dir(enc_cfg.tokenizer or (DEFAULT_PRETRAINED if enc_cfg.name in RANDOM_PRESETS
                                                             else enc_cfg.name))
  if enc_cfg.name in RANDOM_PRESETS:
    from transformers import AutoConfig
    vocab = AutoConfig.from_pretrained(tokenizer_dir).vocab_size
    config, params = EncoderConfig(vocab_size=vocab, **RANDOM_PRESETS[enc_cfg.name]), None
  else:
    config, params = load_pretrained(resolve_encoder_dir(enc_cfg.name))
  if enc_cfg.dropout >= 0:
    config = dataclasses.replace(config, dropout_rate=enc_cfg.dropout, attention_dropout_rate=enc_cfg.dropout)
  return config, params, tokenizer_dir


def load_tokenizer(directory: str):
  from transformers import AutoTokenizer
  return AutoTokenizer.from_pretrained(directory)


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

def train_step(state: dict, batch: dict, *, model: Model, tx: optax.GradientTransformation, dropout_key: jax.Array):
  """One AdamW step on the grouped loss; returns the new state and the global per-task (sums, counts)."""
  rng = jax.random.fold_in(dropout_key, state["step"])

  def loss_fn(params):
    logits = model.logits(params, batch, rng)
    sums, counts = grouped_cross_entropy(logits, batch["labels"], batch["weights"], model.layout)
    return total_loss(sums, counts, model.layout), (sums, counts)

  (loss, (sums, counts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state,
               "step": state["step"] + 1}
  return new_state, {"loss": loss, "sums": sums, "counts": counts}


def eval_step(params: dict, batch: dict, *, model: Model):
  """Per-task probabilities side by side, and the global per-task loss (sums, counts)."""
  logits = model.logits(params, batch)
  sums, counts = grouped_cross_entropy(logits, batch["labels"], batch["weights"], model.layout)
  return model.probabilities(logits), sums, counts


def task_metrics(labels: np.ndarray, probs: np.ndarray, loss_sums: np.ndarray, loss_counts: np.ndarray,
                 layout: Layout) -> dict[str, dict[str, float]]:
  """Host-side metrics per task from the gathered predictions (rows without a label for a task are left out)."""
  result = {}
  for t, (task, offset) in enumerate(zip(layout.tasks, layout.offsets)):
    labelled = labels[:, t] >= 0
    m = metrics_lib.classification_metrics(labels[labelled, t], probs[labelled, offset:offset + task.num_classes])
    m["loss"] = float(loss_sums[t] / loss_counts[t]) if loss_counts[t] > 0 else float("nan")
    result[task.name] = m
  return result


def flatten_metrics(per_task: dict[str, dict[str, float]], prefix: str = "eval") -> dict[str, float]:
  """{task: {metric: v}} -> {'eval/<task>/<metric>': v, 'eval/mean/<metric>': .., 'eval/std/<metric>': ..}."""
  flat = {f"{prefix}/{task}/{k}": v for task, m in per_task.items() for k, v in m.items()}
  flat.update({f"{prefix}/{k}": v for k, v in metrics_lib.mean_and_std(per_task).items()})
  return flat


def format_eval_lines(step: int, per_task: dict[str, dict[str, float]], flat: dict[str, float]) -> list[str]:
  """One line per task and one for the mean, as Flair prints its dev scores."""
  short = {"loss": "loss", "accuracy": "acc", "balanced_accuracy": "bal_acc", "f1_macro": "f1", "mcc": "mcc",
           "auroc_macro": "auroc"}
  width = max(len(name) for name in [*per_task, "mean"])
  line = lambda name, get: f"eval step {step:>6} | {name:<{width}} | " + "  ".join(
      f"{s} {get(k):.4f}" for k, s in short.items())
  return ([line(name, m.get) for name, m in per_task.items()]
          + [line("mean", lambda k: flat[f"eval/mean/{k}"])])


# ---------------------------------------------------------------------------------------------------------------
# Workdir bookkeeping.

class MetricsLog:
  """Appends one JSON object per event to workdir/metrics.jsonl (process 0 only)."""

  def __init__(self, path: str, enabled: bool):
    self.path, self.enabled = path, enabled

  def truncate_after(self, step: int) -> None:
    """On resume: drop events newer than the restored checkpoint, so the history matches an uninterrupted run."""
    if not (self.enabled and os.path.exists(self.path)):
      return
    with open(self.path, encoding="utf-8") as f:
      kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    with open(self.path, "w", encoding="utf-8") as f:
      f.writelines(kept)

  def write(self, step: int, values: dict) -> None:
    if self.enabled:
      with open(self.path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, **{k: _jsonable(v) for k, v in values.items()}}) + "\n")


def _jsonable(v):
  v = float(v)
  return v if np.isfinite(v) else None


def check_metric_name(name: str, layout: Layout) -> None:
  known = [f"eval/{t}/{m}" for t in (*layout.names, "mean", "std") for m in METRIC_NAMES]
  if name not in known:
    hint = difflib.get_close_matches(name, known, n=1)
    raise UserError(f"config.train.best_metric: unknown metric {name!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "; e.g. 'eval/mean/accuracy'"))


def is_better(value: float, best: float | None, mode: str) -> bool:
  if not np.isfinite(value):
    return False
  return best is None or (value > best if mode == "max" else value < best)


def log(message: str) -> None:
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


# ---------------------------------------------------------------------------------------------------------------

def train_and_evaluate(config, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns the last evaluation's metrics."""
  os.makedirs(workdir, exist_ok=True)
  tc = config.train

  # --- Tasks and data --------------------------------------------------------------------------------------------
  layout = layout_from_config(config)
  check_metric_name(tc.best_metric, layout)
  if tc.best_mode not in ("max", "min"):
    raise UserError(f"config.train.best_mode: expected 'max' or 'min', found {tc.best_mode!r}")
  enc_config, pretrained, tokenizer_dir = build_encoder(config.encoder)
  tokenizer = load_tokenizer(tokenizer_dir)
  max_length = max(config.data.length_buckets)
  if max_length > enc_config.max_position_embeddings:
    raise UserError(f"config.data.length_buckets: {max_length} exceeds the encoder's "
                    f"{enc_config.max_position_embeddings} positions")
  train_table, val_table = load_splits(config.data, layout, config.seed)
  train_data, val_data = (encode_table(t, tokenizer, max_length) for t in (train_table, val_table))
  log(f"data: {len(train_data)} training rows ({train_data.truncated} cut to {max_length} tokens), "
      f"{len(val_data)} validation rows; tasks {dict(zip(layout.names, layout.group_sizes))}")

  # --- Mesh ----------------------------------------------------------------------------------------------------------
  mesh = make_mesh(config.mesh)
  for field in ("batch_size", "eval_batch_size"):
    if tc[field] % batch_divisor(mesh):
      raise UserError(f"config.train.{field}: {tc[field]} is not a multiple of the {batch_divisor(mesh)} "
                      "batch shards (mesh data x fsdp)")
  order = TrainOrder(train_data.lengths, tc.batch_size, config.seed,
                     config.data.group_by_length)
  total_steps = tc.steps if tc.steps > 0 else max(int(round(tc.epochs * order.per_epoch)), 1)
  eval_every = tc.eval_every or order.per_epoch

  # --- Model and optimizer ---------------------------------------------------------------------------------------
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.encoder.dtype]
  model = Model(Encoder(enc_config, dtype, config.encoder.remat), layout, config.encoder.pooling,
                config.encoder.head_dropout)
  schedule = learning_rate_schedule(tc, total_steps)
  tx = make_optimizer(tc, schedule)
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))

  # --- Shard and transfer: params and optimizer state are created in place, already sharded -----------------------
  rules = tuple(tuple(r) for r in config.mesh.rules)
  abstract_params = jax.eval_shape(model.init, init_key)
  param_sh = tree_shardings(abstract_params, mesh, rules)
  opt_sh = tree_shardings(jax.eval_shape(tx.init, abstract_params), mesh, rules)
  replicated = NamedSharding(mesh, P())
  state_sh = {"params": param_sh, "opt_state": opt_sh, "step": replicated}
  params = jax.jit(model.init, out_shardings=param_sh)(init_key)
  if pretrained is not None:
    params["encoder"] = jax.device_put(pretrained, param_sh["encoder"])
  state = {"params": params, "opt_state": jax.jit(tx.init, out_shardings=opt_sh)(params),
           "step": jax.device_put(jnp.asarray(0, jnp.int32), replicated)}

  # --- Update and eval steps ------------------------------------------------------------------------------------------
  data_sh = batch_sharding(mesh)
  p_train_step = jax.jit(lambda s, b: train_step(s, b, model=model, tx=tx, dropout_key=dropout_key),
                         in_shardings=(state_sh, data_sh), out_shardings=(state_sh, replicated), donate_argnums=0)
  p_eval_step = jax.jit(lambda p, b: eval_step(p, b, model=model), in_shardings=(param_sh, data_sh),
                        out_shardings=replicated)
  to_device = lambda batch: {k: jax.make_array_from_process_local_data(data_sh, v) for k, v in batch.items()}
  pad_id = tokenizer.pad_token_id or 0

  def evaluate(params, data: Encoded) -> tuple[dict, dict]:
    probs, sums, counts = np.zeros((len(data), layout.total_classes), np.float32), 0.0, 0.0
    for idx in eval_indices(data.lengths, tc.eval_batch_size):
      p, s, c = p_eval_step(params, to_device(make_batch(data, idx, tc.eval_batch_size,
                                                         config.data.length_buckets, pad_id)))
      probs[idx] = np.asarray(p)[:len(idx)]
      sums, counts = sums + np.asarray(s), counts + np.asarray(c)
    per_task = task_metrics(data.labels, probs, sums, counts, layout)
    return per_task, flatten_metrics(per_task)

  # --- Resume from the workdir's latest checkpoint -------------------------------------------------------------------
  meta_base = {"tasks": layout.to_dict(), "encoder": enc_config.to_dict(), "pooling": config.encoder.pooling,
               "length_buckets": list(config.data.length_buckets), "config": config.to_json()}
  tok_files = checkpoint.tokenizer_files(tokenizer)
  latest, best = (checkpoint.manager(os.path.join(workdir, d)) for d in (checkpoint.LATEST, checkpoint.BEST))
  history = MetricsLog(os.path.join(workdir, "metrics.jsonl"), jax.process_index() == 0)
  tracker = {"best": None, "bad_evals": 0, "stopped": False, "metrics": {}}
  if (step := latest.latest_step()) is not None:
    saved = checkpoint.restore_meta(latest, step)
    if saved["tasks"] != meta_base["tasks"]:
      raise UserError(f"{workdir}: holds a run with other tasks ({[t['name'] for t in saved['tasks']]}); "
                      "use a new --workdir")
    state.update(checkpoint.restore_arrays(latest, step, {
        "params": checkpoint.abstract(state["params"], param_sh),
        "opt_state": checkpoint.abstract(state["opt_state"], opt_sh)}))
    state["step"] = jax.device_put(jnp.asarray(step, jnp.int32), replicated)
    tracker = saved["tracker"]
    history.truncate_after(step)
    log(f"resumed from {latest.directory} at step {step}")
  start = int(state["step"])

  # --- Train loop ---------------------------------------------------------------------------------------------------
  bar = tqdm.tqdm(total=total_steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
                  disable=jax.process_index() != 0)
  window = {"sums": 0.0, "counts": 0.0, "loss": 0.0, "steps": 0, "time": time.perf_counter(), "examples": 0}
  for step in range(start + 1, total_steps + 1):
    if tracker["stopped"]:
      break
    idx = order.indices(step - 1)
    state, out = p_train_step(state, to_device(make_batch(train_data, idx, tc.batch_size,
                                                          config.data.length_buckets, pad_id)))
    window["sums"] += out["sums"]
    window["counts"] += out["counts"]
    window["loss"] += out["loss"]
    window["steps"] += 1
    window["examples"] += len(idx)
    bar.update(1)

    if step % tc.log_every == 0 or step == total_steps:
      loss = float(window["loss"]) / window["steps"]
      if not np.isfinite(loss):
        means = dict(zip(layout.names, np.asarray(task_means(window["sums"], window["counts"])).tolist()))
        raise FloatingPointError(f"non-finite training loss at step {step}; task losses {means}")
      rate = window["examples"] / (time.perf_counter() - window["time"])
      task_loss = np.asarray(task_means(window["sums"], window["counts"]))
      history.write(step, {"train/loss": loss, "train/learning_rate": schedule(step - 1),
                           "train/examples_per_sec": rate,
                           **{f"train/{n}/loss": v for n, v in zip(layout.names, task_loss)}})
      bar.set_postfix(loss=f"{loss:.4f}", ex_per_s=f"{rate:.0f}")
      window = {"sums": 0.0, "counts": 0.0, "loss": 0.0, "steps": 0, "time": time.perf_counter(), "examples": 0}

    if step % eval_every == 0 or step == total_steps:
      per_task, flat = evaluate(state["params"], val_data)
      history.write(step, flat)
      for line in format_eval_lines(step, per_task, flat):
        log(line)
      tracker["metrics"] = flat
      value = flat[tc.best_metric]
      if is_better(value, tracker["best"], tc.best_mode):
        tracker.update(best=value, bad_evals=0)
        checkpoint.save(best, step, {"params": state["params"]}, {**meta_base, "step": step, "tracker": tracker},
                        tok_files)
      else:
        tracker["bad_evals"] += 1
        tracker["stopped"] = tc.patience > 0 and tracker["bad_evals"] >= tc.patience
        if tracker["stopped"]:
          log(f"early stop at step {step}: {tc.best_metric} did not improve for {tc.patience} evaluations")
      checkpoint.save(latest, step, {"params": state["params"], "opt_state": state["opt_state"]},
                      {**meta_base, "step": step, "tracker": tracker}, tok_files)
  bar.close()
  return dict(tracker["metrics"])
