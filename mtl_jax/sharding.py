"""Device mesh and shardings from the config.

The mesh has axes `data`, `fsdp` and `model`; the batch is split over `data` x `fsdp`. Parameters are placed by
partition rules, (regex, PartitionSpec) pairs matched in order against each parameter's path ("encoder/layer_0/
query/kernel"); the first match wins and unmatched parameters are replicated. Rules are applied to `jax.eval_shape`
output, so params and optimizer state (whose paths end in the parameter's) are created already sharded.

`DEFAULT_RULES` give, on whatever mesh: data parallelism (`data`), ZeRO-3 style sharding of every matrix over
`fsdp`, and Megatron-style tensor parallelism on `model` (query/key/value and the first feed-forward matrix split by
output features = heads, the attention output and second feed-forward matrix by input features, so each layer
needs one reduction per block). An axis of size 1 changes nothing; a dimension an axis does not divide is left
whole (e.g. a vocabulary of 30522 over 8 devices).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mtl_jax.errors import UserError

AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")
DEFAULT_RULES = (
    (r"embeddings/word/embedding$", ("model", "fsdp")),  # [vocab, hidden]
    (r"embeddings/(position|token_type)/embedding$", (None, "fsdp")),
    (r"embeddings/project/kernel$", (None, "fsdp")),  # ELECTRA, DeBERTa: [embedding width, hidden]
    (r"rel_embeddings$", (None, "fsdp")),  # DeBERTa: [2 x relative span, hidden]
    # [hidden, heads x head_dim | ffn]: columns. ModernBERT's fused qkv and gated intermediate are split alike, so the
    # cuts fall across the blocks they hold (q | k | v, input | gate) and XLA moves data where a block is read
    # (correct: checked on fsdp 2 x model 2 CPU devices; the cost on a real model axis is not measured)
    (r"(query|key|value|qkv|intermediate)/kernel$", ("fsdp", "model")),
    (r"(query|key|value|qkv|intermediate)/bias$", ("model",)),
    (r"output/kernel$", ("model", "fsdp")),  # attention_output [heads x head_dim, hidden], output [ffn, hidden]: rows
    (r"heads/.*/kernel$", ("fsdp", None)),
)


def make_mesh(mesh_cfg, devices=None) -> Mesh:
  """A mesh of sizes `mesh_cfg.<axis>`; one size may be -1 (all remaining devices)."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  sizes = [int(mesh_cfg.get(axis, 1)) for axis in AXES]  # at most one -1, as schema.validate checked
  known = int(np.prod([s for s in sizes if s != -1]))
  if -1 in sizes:
    sizes[sizes.index(-1)] = devices.size // known
  if int(np.prod(sizes)) != devices.size:
    raise UserError(f"config.mesh: axis sizes {dict(zip(AXES, sizes))} do not multiply to the {devices.size} "
                    "available devices")
  return Mesh(devices.reshape(sizes), AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def batch_divisor(mesh: Mesh) -> int:
  """Batch sizes must be multiples of this (the number of batch shards)."""
  return int(np.prod([mesh.shape[a] for a in BATCH_AXES]))


def path_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def spec_for(name: str, rules) -> P:
  for pattern, spec in rules:
    if re.search(pattern, name):
      return spec if isinstance(spec, P) else P(*spec)
  return P()


def fit_spec(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
  """`spec` with each axis kept only where it divides its dimension (and only for dimensions the array has)."""
  axes = []
  for dim, axis in zip(shape, tuple(spec)[:len(shape)]):
    size = int(np.prod([mesh.shape[a] for a in (axis if isinstance(axis, tuple) else (axis,)) if a]))
    axes.append(axis if axis and dim % size == 0 else None)
  return P(*axes)


def tree_shardings(abstract_tree, mesh: Mesh, rules=DEFAULT_RULES) -> object:
  """NamedSharding per leaf of an (abstract) pytree, by the partition rules."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: NamedSharding(mesh, fit_spec(spec_for(path_name(path), rules), x.shape, mesh)), abstract_tree)


def process_rows(sharding: NamedSharding, batch_size: int) -> slice:
  """The rows of a global batch this process holds under `sharding` (a contiguous block: the mesh orders devices
  by process), which is all it builds and transfers."""
  blocks = sorted({index[0].indices(batch_size)[:2] for index in
                   sharding.addressable_devices_indices_map((batch_size,)).values()})
  if any(stop != start for (_, stop), (start, _) in zip(blocks, blocks[1:])):
    raise ValueError(f"process {jax.process_index()} holds batch rows {blocks}, not one block; order the mesh's "
                     "devices by process")
  return slice(blocks[0][0], blocks[-1][1])


def batch_multiple(train_cfg, mesh: Mesh) -> int:
  """What every training batch size must be a multiple of (the batch shards x train.grad_accumulation); checks
  train.batch_size and train.eval_batch_size against it."""
  for field, multiple in (("batch_size", train_cfg.grad_accumulation), ("eval_batch_size", 1)):
    if train_cfg[field] % (multiple * batch_divisor(mesh)):
      micro = f" x {multiple} micro-batches (train.grad_accumulation)" if multiple > 1 else ""
      raise UserError(f"config.train.{field}: {train_cfg[field]} is not a multiple of the {batch_divisor(mesh)} batch "
                      f"shards (mesh data x fsdp){micro}")
  return train_cfg.grad_accumulation * batch_divisor(mesh)


def create_state(init_params, tx, key: jax.Array, mesh: Mesh, rules=(), pretrained: dict | None = None) -> tuple:
  """(state, its shardings): params and optimizer state created in place, already sharded by `rules`
  (`config.mesh.rules`; empty: DEFAULT_RULES) with shapes from jax.eval_shape, so nothing is allocated before it is
  placed; the pretrained encoder is put over its params."""
  rules = tuple(tuple(r) for r in rules) or DEFAULT_RULES
  abstract_params = jax.eval_shape(init_params, key)
  param_sh = tree_shardings(abstract_params, mesh, rules)
  opt_sh = tree_shardings(jax.eval_shape(tx.init, abstract_params), mesh, rules)
  replicated = NamedSharding(mesh, P())
  params = jax.jit(init_params, out_shardings=param_sh)(key)
  if pretrained is not None:
    params["encoder"] = jax.device_put(pretrained, param_sh["encoder"])
  state = {"params": params, "opt_state": jax.jit(tx.init, out_shardings=opt_sh)(params),
           "step": jax.device_put(jnp.asarray(0, jnp.int32), replicated)}
  return state, {"params": param_sh, "opt_state": opt_sh, "step": replicated}
