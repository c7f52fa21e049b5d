"""Device mesh and shardings from the config.

The mesh has axes `data`, `fsdp` and `model`; the batch is split over `data` x `fsdp`. Parameters are placed by
partition rules, (regex, PartitionSpec) pairs matched in order against each parameter's path ("encoder/layer_0/
query/kernel"); the first match wins and unmatched parameters are replicated. Rules are applied to `jax.eval_shape`
output, so params and optimizer state are created already sharded.
"""

import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mtl_jax.errors import UserError

AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")


def make_mesh(mesh_cfg, devices=None) -> Mesh:
  """A mesh of sizes `mesh_cfg.<axis>`; one size may be -1 (all remaining devices)."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  sizes = [int(mesh_cfg.get(axis, 1)) for axis in AXES]
  if sizes.count(-1) > 1:
    raise UserError(f"config.mesh: at most one axis may be -1, found {dict(zip(AXES, sizes))}")
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


def tree_shardings(abstract_tree, mesh: Mesh, rules=()) -> object:
  """NamedSharding per leaf of an (abstract) pytree, by the partition rules."""
  return jax.tree_util.tree_map_with_path(lambda path, _: NamedSharding(mesh, spec_for(path_name(path), rules)),
                                          abstract_tree)
