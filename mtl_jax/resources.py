"""Memory of the train and eval steps, estimated from the settings before anything is loaded or compiled.

A batch or length that cannot fit fails in seconds with the setting named, rather than minutes later inside XLA
with an allocation error (or, on CPU, with the machine swapping). The estimate counts what the encoder (any family:
they share the layers) keeps for the backward pass (per layer: the projections, the attention scores and
probabilities, the feed-forward activations) plus the float32 parameters, gradients (one per task with PCGrad) and
the two AdamW moments. It is an estimate: XLA fuses some of these away and adds workspace;
`config.train.memory_limit_gb` overrides the device memory it is checked against.
"""

import os

import jax
import numpy as np

from mtl_jax.encoders import EncoderConfig
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import eval_rows
from mtl_jax.sampling import bucket_batch_sizes, packing_for

GIB = 1024**3


def encoder_params(enc: EncoderConfig) -> int:
  """Parameter count of the encoder (embeddings, layers), the bulk of the model."""
  h, i, w = enc.hidden_size, enc.intermediate_size, enc.embedding_size or enc.hidden_size
  norm = lambda width: width * (2 if enc.norm_bias else 1)  # a LayerNorm's scale (and bias)
  tables = enc.vocab_size + (enc.max_position_embeddings if enc.absolute_positions else 0) + enc.type_vocab_size
  embeddings = tables * w + norm(h if enc.project_before_norm else w)  # the LayerNorm's width
  if w != h:  # the projection to the hidden size (ELECTRA after the LayerNorm with a bias, DeBERTa before, without)
    embeddings += w * h + (0 if enc.project_before_norm else h)
  gates = 2 if enc.glu else 1  # ModernBERT's GeGLU: the first matrix twice as wide
  attention = 4 * h * h + (4 * h if enc.attention_bias else 0)
  mlp = (gates + 1) * h * i + (gates * i + h if enc.mlp_bias else 0)
  # two LayerNorms per layer; pre_norm (ModernBERT): the first layer's attention has none but a final one follows,
  # so the count is the same
  layer = attention + mlp + 2 * norm(h)
  relative = 0
  if enc.relative_attention:  # DeBERTa: the shared relative-position table (and its LayerNorm), own projections
    relative = 2 * enc.rel_span * h + (2 * h if enc.rel_norm else 0)
    layer += 0 if enc.share_att_key else len(enc.pos_att_type) * (h * h + h)
  return embeddings + relative + enc.num_layers * layer


def layer_activations(enc: EncoderConfig, length: int) -> int:
  """Values one layer keeps per example for its backward pass: per token ~16 hidden-sized values (q, k, v, context,
  projections, residuals, LayerNorm statistics, dropout masks) and 3 feed-forward-sized ones (around the GELU), and 5
  attention maps per head (scores, softmax, dropout). Calibrated on XLA's memory analysis of our train step
  (tests/reliability/test_resources.py)."""
  return length * (16 * enc.hidden_size + 3 * enc.intermediate_size) + 5 * enc.num_heads * length * length


def train_activation_bytes(enc: EncoderConfig, batch: int, length: int, itemsize: int, remat: bool) -> int:
  """Activations of one training step; with remat only each layer's input is kept, and one layer is recomputed."""
  per_layer = length * enc.hidden_size if remat else layer_activations(enc, length)
  per_example = 3 * length * enc.hidden_size + enc.num_layers * per_layer
  if remat:
    per_example += layer_activations(enc, length)
  return batch * per_example * itemsize


def eval_activation_bytes(enc: EncoderConfig, batch: int, length: int, itemsize: int) -> int:
  """Activations of one forward pass: only a layer's live tensors at a time."""
  live = 4 * length * enc.hidden_size + 2 * max(length * enc.intermediate_size, enc.num_heads * length * length)
  return batch * live * itemsize


def device_memory_bytes() -> tuple[int, str]:
  """(bytes per local device, what that is): the accelerator's limit, or the host's memory (cgroup limit included)
  shared by the CPU devices."""
  device = jax.local_devices()[0]
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"]), f"{device.device_kind} memory"
  total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  try:
    with open("/sys/fs/cgroup/memory.max") as f:
      limit = f.read().strip()
    total = min(total, int(limit)) if limit.isdigit() else total
  except OSError:
    pass
  return total // jax.local_device_count(), f"host memory / {jax.local_device_count()} CPU devices"


def train_shapes(config, batch_shards: int) -> list[tuple[int, int]]:
  """The (batch size, length) shapes the train step may see: (train.batch_size, the longest bucket); packed
  (`config.data.packing`), at most as many rows of the longest bucket (shorter packed rows lie side by side in them),
  or with a token budget the rows training packs (`sampling.packing_for`, which names a budget too small); with a
  token budget (`config.data.tokens_per_batch`) unpacked, every bucket's (B_L, L)."""
  data, tc = config.data, config.train
  budget, length = data.get("tokens_per_batch", 0), max(data.length_buckets)
  if data.get("packing") and budget:
    return [(packing_for(tc.batch_size, np.zeros(0), (length,), budget, tc.grad_accumulation * batch_shards).rows[0],
             length)]
  if data.get("packing") or not budget:
    return [(tc.batch_size, length)]
  sizes = bucket_batch_sizes(data.length_buckets, data.tokens_per_batch, tc.grad_accumulation * batch_shards)
  return [(size, length) for length, size in sizes.items()]


def check_memory(config, enc: EncoderConfig, batch_shards: int, param_shards: int) -> str:
  """Raises a UserError naming the setting when the estimated per-device need exceeds the memory; else returns a
  one-line summary. `batch_shards` divide the batch, `param_shards` the parameters and optimizer state. With a token
  budget every bucket's (B_L, L) is checked: at a constant token count attention grows with L, so the longest bucket
  usually needs the most."""
  tc, length = config.train, max(config.data.length_buckets)
  itemsize = 2 if config.encoder.dtype == "bfloat16" else 4
  tasks = len(tc.get("tasks") or config.tasks)
  copies = 4 + (tasks - 1 if tc.get("loss_weighting") == "pcgrad" else 0)  # PCGrad keeps a gradient per task
  state = copies * 4 * encoder_params(enc) // param_shards  # float32 params, grads, AdamW mu and nu
  per_pass = lambda batch, n: train_activation_bytes(enc, -(-(batch // tc.grad_accumulation) // batch_shards), n,
                                                     itemsize, config.encoder.remat)
  batch, train_length = max(train_shapes(config, batch_shards), key=lambda shape: per_pass(*shape))
  micro = batch // tc.grad_accumulation  # examples per forward/backward pass
  train = per_pass(batch, train_length)
  eval_size = eval_rows(tc.eval_batch_size, config.data.length_buckets, batch_shards)  # packed rows of `length`
  evaluation = eval_activation_bytes(enc, eval_size // batch_shards, length, itemsize)
  limit, what = device_memory_bytes()
  if tc.memory_limit_gb > 0:
    limit, what = int(tc.memory_limit_gb * GIB), "config.train.memory_limit_gb"
  gib = lambda n: f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.0f} MiB"
  fixes = "lower it or the longest of config.data.length_buckets"
  levers = ", raise config.train.grad_accumulation" + ("" if config.encoder.remat else
                                                       ", or set config.encoder.remat=True")
  budget = config.data.get("tokens_per_batch", 0)
  train_what = (f"config.data.tokens_per_batch: {budget} tokens per batch, as {batch} "
                f"{'packed rows' if config.data.get('packing') else 'examples'} of {train_length} tokens," if budget
                else f"config.train.batch_size: {tc.batch_size} examples of up to {length} tokens")
  passes = [(train_what, train, micro, levers),
            (f"config.train.eval_batch_size: {tc.eval_batch_size} texts, as {eval_size} packed rows of {length} "
             "tokens,", evaluation, eval_size, "")]
  for setting, activations, examples, more in passes:
    need = state + activations
    if need > limit:
      raise UserError(
          f"{setting} need about {gib(need)} per device "
          f"({gib(state)} parameters and optimizer state, {gib(need - state)} activations for "
          f"{-(-examples // batch_shards)} examples per device and pass), more than the {gib(limit)} of {what}; "
          f"{fixes}{more} (config.train.memory_limit_gb overrides the limit)")
  return (f"memory: about {gib(state + max(train, evaluation))} per device estimated for batches of "
          f"{batch} x {train_length} tokens (limit {gib(limit)}, {what})")
