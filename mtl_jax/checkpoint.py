"""Self-describing orbax checkpoints.

A workdir holds two orbax managers:
  checkpoints/<step>/  params, opt_state, meta, tokenizer   the latest full training state, for resume;
  best/<step>/         params, meta, tokenizer              the best evaluation so far, for prediction.
`meta` (JSON) carries the task layout (names, kinds, label names), encoder config, pooling, max length and the
training state outside the arrays (early-stopping counters, the metrics at that step). `tokenizer` (JSON) holds the
tokenizer's files. The encoder is one subtree of `params`, stored once whatever the number of tasks. Orbax writes
each step to a temporary directory and renames it when complete, so a half-written checkpoint is never the latest.
"""

import base64
import logging
import os
import re
import tempfile

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from mtl_jax.errors import UserError

LATEST, BEST = "checkpoints", "best"


def manager(directory: str, create: bool = True) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(os.path.abspath(directory),
                               options=ocp.CheckpointManagerOptions(max_to_keep=1, create=create))


def tokenizer_files(tokenizer) -> dict[str, str]:
  """The tokenizer's files as {name: base64 of the bytes} (some, like sentencepiece models, are binary)."""
  with tempfile.TemporaryDirectory() as tmp:
    tokenizer.save_pretrained(tmp)
    files = {}
    for name in sorted(os.listdir(tmp)):
      with open(os.path.join(tmp, name), "rb") as f:
        files[name] = base64.b64encode(f.read()).decode("ascii")
    return files


def restore_tokenizer(mngr: ocp.CheckpointManager, step: int):
  """The tokenizer stored with a checkpoint."""
  from mtl_jax.tokenizer import load_tokenizer
  files = mngr.restore(step, args=ocp.args.Composite(tokenizer=ocp.args.JsonRestore())).tokenizer
  with tempfile.TemporaryDirectory() as tmp:
    for name, data in files.items():
      with open(os.path.join(tmp, name), "wb") as f:
        f.write(base64.b64decode(data))
    return load_tokenizer(tmp)


def save(mngr: ocp.CheckpointManager, step: int, arrays: dict, meta: dict, tokenizer: dict[str, str]) -> None:
  """Saves `arrays` (e.g. params and opt_state) with meta and tokenizer, and waits until it is committed. A write the
  filesystem refuses (disk full, read-only, file too large) is a UserError naming the directory; the checkpoint
  before it stays the latest (orbax commits a step by renaming its temporary directory)."""
  items = {name: ocp.args.StandardSave(tree) for name, tree in arrays.items()}
  quiet = _FilesystemErrors()  # orbax's threads log the failed write with a traceback; the UserError below says it
  logging.getLogger("absl").addFilter(quiet)
  try:
    if step in mngr.all_steps():  # a resumed run redoing a step whose checkpoint a crash left behind
      mngr.delete(step)
    mngr.save(step, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta), tokenizer=ocp.args.JsonSave(tokenizer),
                                            **items), force=True)
    mngr.wait_until_finished()
  except (OSError, ValueError) as e:
    if (reason := write_error(e)) is None:
      raise
    raise UserError(f"{mngr.directory}: cannot write the checkpoint of step {step} ({reason}); the last complete "
                    "checkpoint stays the latest: make room (or the directory writable) and run the same command")\
        from None
  finally:
    logging.getLogger("absl").removeFilter(quiet)


class _FilesystemErrors(logging.Filter):
  """Drops log records of writes the filesystem refused."""

  def filter(self, record: logging.LogRecord) -> bool:
    return os_error_in(record.getMessage()) is None


def write_error(error: Exception) -> str | None:
  """What the filesystem said when a write failed: an OSError's, or the OS error inside tensorstore's ValueError;
  None for any other error."""
  return (error.strerror or str(error)) if isinstance(error, OSError) else os_error_in(str(error))


def os_error_in(text: str) -> str | None:
  """The OS error tensorstore quotes (`... Failed to write 187352 bytes to file 8: No space left on device
  [os_error_code='28']`), or None."""
  found = re.search(r": ([^:\[]+?) \[os_error_code='?\d+'?\]", text)
  return found.group(1) if found else None


def restore_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
  return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def restore_arrays(mngr: ocp.CheckpointManager, step: int, targets: dict, partial: bool = False) -> dict:
  """Restores the named array trees; each target is an abstract tree (with shardings) or None (as saved). `partial`:
  the targets may leave out subtrees of what was saved (e.g. the model's params of a full training state)."""
  args = {name: ocp.args.PyTreeRestore(target, ocp.checkpoint_utils.construct_restore_args(target),
                                       partial_restore=True) if partial else ocp.args.StandardRestore(target)
          for name, target in targets.items()}
  restored = mngr.restore(step, args=ocp.args.Composite(**args))
  return {name: restored[name] for name in targets}


def abstract(tree, shardings) -> object:
  """ShapeDtypeStructs carrying the target shardings, for restoring straight onto devices."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def find(path: str) -> tuple[ocp.CheckpointManager, int]:
  """(manager, step) for a workdir (best, else latest), a manager directory, or one step's directory."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise UserError(f"{path}: checkpoint directory not found")
  for candidate in (os.path.join(path, BEST), os.path.join(path, LATEST), path):
    if os.path.isdir(candidate):
      mngr = manager(candidate, create=False)
      if (step := mngr.latest_step()) is not None:
        return mngr, step
  parent, name = os.path.split(path)
  if name.isdigit() and os.path.isdir(os.path.join(path, "meta")):
    return manager(parent, create=False), int(name)
  raise UserError(f"{path}: no checkpoint found (expected a workdir, a '{BEST}' or '{LATEST}' directory, "
                  "or one step's directory)")


def resume(mngr: ocp.CheckpointManager, meta: dict, state: dict, shardings: dict, workdir: str) -> dict | None:
  """Restores the latest training state of `mngr` into `state` (onto `shardings`) and returns its meta; None when
  there is no checkpoint. A checkpoint whose `meta` differs (tasks, encoder, ...) is another run: a UserError."""
  step = mngr.latest_step()
  if not step:
    return None
  saved = restore_meta(mngr, step)
  if changed := [k for k in meta if saved.get(k) != meta[k]]:
    raise UserError(f"{workdir}: holds a run with another {', '.join(changed)}; use a new --workdir")
  state.update(restore_arrays(mngr, step, {k: abstract(state[k], shardings[k]) for k in ("params", "opt_state")}))
  state["step"] = jax.device_put(jnp.asarray(step, jnp.int32), shardings["step"])
  return saved
