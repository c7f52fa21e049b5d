"""Training: `train_and_evaluate(config, workdir)`, one orchestrator in sections (as big_vision's train.py): config,
encoder and mesh -> tasks and data -> model and optimizer -> shard and transfer -> steps -> resume -> train loop ->
the best model on the test split. The pieces are short functions in the modules they belong to.
"""

import os
import time

import jax
import numpy as np
import tqdm

from mtl_jax import checkpoint, corpora, evaluation, optim, sampling, schema, steps, weighting
from mtl_jax.encoder import build_encoder
from mtl_jax.input_pipeline import check_token_types, concat, eval_batches, eval_rows, make_batch, make_step_batch
from mtl_jax.model import Model
from mtl_jax.resources import check_memory
from mtl_jax.run_state import MetricsLog, Preemption, Tracker, TrainWindow, log, workdir_lock
from mtl_jax.sharding import batch_divisor, batch_multiple, batch_sharding, create_state, make_mesh, process_rows


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint; one run per workdir at a time); returns the
  last evaluation's metrics and, with a test split, the best model's test metrics."""
  os.makedirs(workdir, exist_ok=True)
  with workdir_lock(workdir, jax.process_index()):
    return run(config, workdir)


def run(config, workdir: str) -> dict[str, float]:  # train_and_evaluate's body, the workdir locked
  tc, buckets = config.train, config.data.length_buckets

  # --- Config, encoder, mesh; the memory estimate before minutes of data loading -----------------------------------
  schema.validate(config)
  enc_config, pretrained, tokenizer = build_encoder(config.encoder, max(buckets))
  mesh = make_mesh(config.mesh)
  multiple = batch_multiple(tc, mesh)  # token-budget batch sizes are multiples of this
  if config.data.tokens_per_batch and not config.data.packing:  # a budget too small fails here (packed: check_memory)
    log(f"batches: {sampling.bucket_batch_sizes(buckets, config.data.tokens_per_batch, multiple)} "
        f"examples per bucket length (config.data.tokens_per_batch={config.data.tokens_per_batch})")
  log(check_memory(config, enc_config, batch_divisor(mesh), mesh.shape["fsdp"] * mesh.shape["model"]))

  # --- Tasks and data ------------------------------------------------------------------------------------------------
  started = time.perf_counter()
  layout, train_parts, val_data, test_data = corpora.load_data(config, tokenizer, max(buckets))
  train_data = concat(list(train_parts.values()))
  check_token_types(train_data, enc_config.type_vocab_size, f"config.encoder.name={config.encoder.name!r}")
  log(f"{corpora.describe(layout, train_data, val_data, test_data, max(buckets))} "
      f"(ready in {time.perf_counter() - started:.1f} s)")
  order = sampling.mixture_order(config, train_parts, train_data.lengths, multiple)
  if order.packing:
    lengths = ", ".join(map(str, order.packing.lengths))
    log(f"batches: packed, {order.packing.rows[-1]} rows of {order.packing.length} tokens (texts packed into rows of "
        f"{lengths} tokens, the shorter side by side, attending within them), up to one text per 8 tokens, "
        f"{order.per_epoch} steps per epoch (config.data.packing)")
  total_steps = tc.steps if tc.steps > 0 else max(int(round(tc.epochs * order.per_epoch)), 1)
  eval_every = tc.eval_every or order.per_epoch

  # --- Model and optimizer -------------------------------------------------------------------------------------------
  model = Model.from_config(config.encoder, enc_config, layout, order.packing.lengths[:-1] if order.packing else ())
  tx, schedule = optim.build(tc, total_steps, enc_config.num_layers)
  learned = weighting.init(tc.loss_weighting, len(layout.tasks))  # e.g. uncertainty weighting's log-variances
  init_params = lambda key: {**model.init(key), **({"weighting": learned} if learned else {})}
  model_params = lambda params: {k: params[k] for k in ("encoder", "heads")}  # what best/ keeps, for prediction
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))

  # --- Shard and transfer: params and optimizer state are created in place, already sharded ------------------------
  state, state_sh = create_state(init_params, tx, init_key, mesh, config.mesh.rules, pretrained)
  param_sh, replicated = state_sh["params"], state_sh["step"]

  # --- Update and eval steps -----------------------------------------------------------------------------------------
  data_sh, pad_id = batch_sharding(mesh), tokenizer.pad_token_id or 0
  # The dropout key is an argument, not a constant of the compiled step: one compile (and its cache entry) serves
  # every seed.
  seed_key = jax.make_array_from_process_local_data(replicated, np.asarray(jax.random.key_data(dropout_key)))
  p_train_step = jax.jit(lambda s, b, k: steps.train_step(s, b, model=model, tx=tx,
                                                          dropout_key=jax.random.wrap_key_data(k),
                                                          accumulation=tc.grad_accumulation,
                                                          loss_weighting=tc.loss_weighting),
                         in_shardings=(state_sh, data_sh, replicated), out_shardings=(state_sh, replicated),
                         donate_argnums=0)
  p_eval_step = jax.jit(lambda p, b: steps.eval_step(p, b, model=model), in_shardings=(model_params(param_sh), data_sh),
                        out_shardings=replicated)

  def global_batch(size: int, build) -> dict:  # build(rows): this process's rows of a global batch of `size`
    local = build(process_rows(data_sh, size))
    return {k: jax.make_array_from_process_local_data(data_sh, v, (size, *v.shape[1:])) for k, v in local.items()}

  def train_batch(planned: sampling.StepBatch) -> dict:
    if planned.places is None:
      return global_batch(planned.size, lambda rows: make_batch(train_data, planned.rows, planned.size, buckets,
                                                                pad_id, rows, planned.length))
    return global_batch(planned.size, lambda rows: make_step_batch(train_data, planned.rows, planned.places,
                                                                   planned.size, planned.length, order.packing.length,
                                                                   pad_id, rows))

  shards = batch_divisor(mesh)
  eval_size = eval_rows(tc.eval_batch_size, buckets, shards)  # evaluation packs rows of the longest bucket
  eval_plans = {}  # split -> its packed batches, packed at the split's first evaluation

  def evaluate(params, data, step: int, split: str = "eval") -> dict[str, float]:
    if split not in eval_plans:
      eval_plans[split] = eval_batches(data.lengths, eval_size, max(buckets), shards)
    batches = eval_plans[split]
    per_task, flat, _ = evaluation.score(lambda b: p_eval_step(params, b),
                                         lambda b: global_batch(b.rows, lambda share: b.build(data, pad_id, share)),
                                         data, layout, batches, split)
    history.write(step, flat)
    for line in evaluation.format_eval_lines(step, per_task, flat, split):
      log(line)
    return flat

  # --- Resume from the workdir's latest checkpoint -------------------------------------------------------------------
  meta_base = {"tasks": layout.to_dict(), "encoder": enc_config.to_dict(), "pooling": config.encoder.pooling,
               "dtype": config.encoder.dtype, "length_buckets": list(buckets), "loss_weighting": tc.loss_weighting}
  meta = lambda step, **extra: {**meta_base, "step": step, "tracker": {**tracker.to_json(), **extra},
                                "config": config.to_json()}
  tok_files = checkpoint.tokenizer_files(tokenizer)
  latest, best = (checkpoint.manager(os.path.join(workdir, d)) for d in (checkpoint.LATEST, checkpoint.BEST))
  history, tracker, start = MetricsLog(workdir, jax.process_index() == 0), Tracker(), 0
  if saved := checkpoint.resume(latest, meta_base, state, state_sh, workdir):
    tracker, start = Tracker.from_json(saved["tracker"]), saved["step"]
    log(f"resumed from {latest.directory} at step {start}")
  history.start(start, config.to_json_best_effort(indent=2), tc.tensorboard)  # later events are written again

  def save_latest(step: int) -> None:  # raises on a NaN loss since the last log event, before anything is saved
    window.check(step, layout)
    checkpoint.save(latest, step, {"params": state["params"], "opt_state": state["opt_state"]},
                    meta(step, window=window.state()), tok_files)

  # --- Train loop ----------------------------------------------------------------------------------------------------
  bar = tqdm.tqdm(total=total_steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
                  disable=jax.process_index() != 0)
  window = TrainWindow(saved["tracker"].get("window") if saved else None)  # a window a checkpoint interrupted
  shapes, finished, preempted, preemption = set(), False, False, Preemption()
  try:
    for step in range(start + 1, total_steps + 1):
      if tracker.stopped:
        break
      planned = order.batch(step - 1)  # rows, batch size (train.batch_size, B_L with a budget, packed R), length
      batch = train_batch(planned)
      state, out = p_train_step(state, batch, seed_key)
      length = batch["input_ids"].shape[1]  # the padded length
      window.add(out, len(planned.rows), int(np.minimum(train_data.lengths[planned.rows], length).sum()),
                 planned.size * length)
      shapes.add((planned.size, length))  # the train step compiles once per batch shape
      bar.update(1)
      is_eval = step % eval_every == 0 or step == total_steps
      if step % tc.log_every == 0 or is_eval:
        values = window.close(step, layout)
        history.write(step, {**values, **weighting.logged_weights(state["params"], layout),
                             "train/learning_rate": schedule(step - 1), "train/compiles": len(shapes)})
        bar.set_postfix(loss=f"{values['train/loss']:.4f}", ex_per_s=f"{values['train/examples_per_sec']:.0f}")
        window = TrainWindow()
      if is_eval and tracker.update(evaluate(model_params(state["params"]), val_data, step), tc):
        # best before latest: after a crash between the two, the resumed run redoes this evaluation
        checkpoint.save(best, step, {"params": model_params(state["params"])}, meta(step), tok_files)
      preempted = preemption.requested(sync=step % tc.log_every == 0 or is_eval)
      if finished := step == total_steps or tracker.stopped:
        break  # the last checkpoint is saved after the test split is scored
      if is_eval or preempted or (tc.checkpoint_every and step % tc.checkpoint_every == 0):
        save_latest(step)
      if preempted:
        break

    # --- The best model on the test split, then the last checkpoint --------------------------------------------------
    if finished:
      if test_data is not None and tc.score_test:
        best_params = checkpoint.restore_arrays(best, best.latest_step(), {"params": checkpoint.abstract(
            model_params(state["params"]), model_params(param_sh))})["params"]
        tracker.test = evaluate(best_params, test_data, step, split="test")
      save_latest(step)
    if preempted:
      log(f"SIGTERM: saved step {step} to {latest.directory}; the same command resumes from there")
  finally:
    preemption.close()
    history.close()
  bar.close()
  return {**tracker.metrics, **(tracker.test or {})}
