"""The token cache: a run's tokenized examples written once, memory-mapped by later runs and by `mtl_jax.evaluate`.

Reading and tokenizing a large table costs minutes and, held as Python objects, gigabytes of host memory. An entry
holds each dataset's `Encoded` fields as flat binary arrays (`Ragged` values and offsets, per-example arrays) that
later runs map with `np.memmap`: they start at once, and a batch reads only the pages of its own rows, so host memory
stays flat in the dataset's size.

An entry lives in `<cache dir>/<key>/`, the key a hash of everything its examples depend on: the sources'
fingerprints (absolute path, size and modification time of every file, folders walked), the task layout, the
tokenizer (a hash of its files) and the length settings, and mtl_jax's cache format. A changed source is a new key.
An entry is built in a temporary folder beside it and renamed into place once complete, so a half-written entry is
never used; `meta.json`, written last, records each file's size and CRC-32, checked when the entry is opened: a
corrupt entry (a truncated or damaged file) is reported in one line and rebuilt. Several processes may build the
same entry at once: the first rename wins, the others use it.
"""

import contextlib
import dataclasses
import glob
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable

import jax
import numpy as np

from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import Encoded
from mtl_jax.ragged import Ragged

FORMAT = 1  # bump when what an entry holds, or how, changes
TOKENS = ("ids", "type_ids", "tags")  # per-token fields: row i spans the ids' offsets i .. i + 1
PER_EXAMPLE = ("labels", "weights", "cut", "sentence", "targets")
META = "meta.json"
OFF = "off"  # config.data.cache_dir: no cache
JOIN_ROWS = 16384  # rows copied at a time when shares are joined
WAIT_MS = 24 * 3600 * 1000  # how long the other processes wait for process 0's build (a lost process stops the job)


def cache_root() -> str:
  """Where mtl_jax keeps its caches (tokens/, and xla/: compiled steps, mtl_jax.cli): $MTL_JAX_CACHE, else
  $XDG_CACHE_HOME/mtl_jax (~/.cache/mtl_jax)."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.environ.get("MTL_JAX_CACHE") or os.path.join(base, "mtl_jax")


def default_dir() -> str:
  return os.path.join(cache_root(), "tokens")


def cache_dir(data_cfg) -> str | None:
  """`config.data.cache_dir`: "" the default folder, "off" no cache (None), else that folder."""
  value = str(data_cfg.get("cache_dir", "") or "")
  return None if value == OFF else os.path.expanduser(value) if value else default_dir()


# ---------------------------------------------------------------------------------------------------------------
# Keys.

def file_state(path: str) -> list:
  """[absolute path, size, mtime_ns] of a file, or of every file under a folder (walked in sorted order)."""
  path = os.path.abspath(path)
  if os.path.isdir(path):
    found = sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files)
    return [state for f in found for state in file_state(f)]
  stat = os.stat(path)
  return [[path, stat.st_size, stat.st_mtime_ns]]


def sources_state(paths: Iterable[str]) -> list:
  """The fingerprints of paths, globs expanded (a pattern that matches nothing fingerprints as itself)."""
  return [state for p in paths for m in (sorted(glob.glob(p)) or [p]) if os.path.exists(m) for state in file_state(m)]


def tokenizer_id(tokenizer) -> str:
  """A hash of the tokenizer: its files (mtl_jax's FastTokenizer), else transformers' class and vocabulary."""
  files = getattr(tokenizer, "files", None)
  if files is not None:
    blob = json.dumps({k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())})
  else:
    blob = json.dumps([type(tokenizer).__name__, sorted(tokenizer.get_vocab().items())])
  return hashlib.sha256(blob.encode()).hexdigest()


def entry_key(parts: dict) -> str:
  return hashlib.sha256(json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str).encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------------------------
# Writing an entry.

class _Array:
  """One flat binary file appended to in pieces, with its running CRC-32."""

  def __init__(self, path: str, dtype, trailing: tuple[int, ...]):
    self.path, self.dtype, self.trailing = path, np.dtype(dtype), tuple(trailing)
    self.file, self.rows, self.crc = open(path, "wb"), 0, 0

  def append(self, values: np.ndarray) -> None:
    data = np.ascontiguousarray(values, self.dtype).tobytes()
    self.file.write(data)
    self.crc, self.rows = zlib.crc32(data, self.crc), self.rows + len(values)

  def close(self) -> dict:
    self.file.close()
    return {"file": os.path.basename(self.path), "dtype": self.dtype.str, "shape": [self.rows, *self.trailing],
            "crc32": self.crc}


class DatasetWriter:
  """Appends `Encoded` chunks of one dataset to its files (`<name>.<field>.bin`). The per-token fields (ids, token
  types, tags) share the ids' offsets; word starts have their own. A field a chunk lacks is written as what its
  absence means (token types 0, once any chunk has them), so chunks may differ in what they carry."""

  def __init__(self, directory: str, name: str):
    self.directory, self.name = directory, name
    self.arrays: dict[str, _Array] = {}
    self.rows, self.tokens = 0, 0

  def _write(self, field: str, values: np.ndarray) -> None:
    if field not in self.arrays:
      path = os.path.join(self.directory, f"{self.name}.{field}.bin")
      self.arrays[field] = _Array(path, values.dtype, values.shape[1:])
      if field == "type_ids" and self.tokens:  # the chunks before had single texts: type 0
        self.arrays[field].append(np.zeros(self.tokens, values.dtype))
    self.arrays[field].append(values)

  def append(self, data: Encoded) -> None:
    if "type_ids" in self.arrays and data.type_ids is None:
      data = dataclasses.replace(data, type_ids=Ragged.filled(data.lengths, 0))
    for field in TOKENS:
      if (value := getattr(data, field)) is not None:
        self._write(field, value.compact()[0])
    self._write("ids.ends", self.tokens + np.cumsum(data.lengths, dtype=np.int64))
    if data.starts is not None:
      values, offsets = data.starts.compact()
      ends = self.arrays["starts"].rows if "starts" in self.arrays else 0
      self._write("starts", values)
      self._write("starts.ends", ends + offsets[1:])
    for field in PER_EXAMPLE:
      if (value := getattr(data, field)) is not None:
        self._write(field, np.asarray(value))
    self.rows, self.tokens = self.rows + len(data), self.tokens + int(data.lengths.sum())

  def close(self) -> dict:
    """The dataset's description: its rows and {field: file description}."""
    return {"rows": self.rows, "fields": {field: array.close() for field, array in self.arrays.items()}}


class EntryWriter:
  """What a build function fills: datasets by name (`add`) and `extra`, JSON the entry keeps (a layout, say)."""

  def __init__(self, directory: str):
    self.directory, self.datasets, self.extra = directory, {}, {}

  def add(self, name: str, chunks: Iterable[Encoded]) -> None:
    writer = DatasetWriter(self.directory, name)
    try:
      for chunk in chunks:
        writer.append(chunk)
    finally:
      self.datasets[name] = writer.close()


# ---------------------------------------------------------------------------------------------------------------
# Reading an entry.

class Corrupt(Exception):
  """An entry that cannot be used as it is (rebuilt)."""


def _check(directory: str, description: dict) -> None:
  path = os.path.join(directory, description["file"])
  expected = int(np.prod(description["shape"])) * np.dtype(description["dtype"]).itemsize
  if not os.path.isfile(path) or os.path.getsize(path) != expected:
    raise Corrupt(f"{description['file']}: expected {expected} bytes, found "
                  f"{os.path.getsize(path) if os.path.isfile(path) else 'no file'}")
  crc, block = 0, bytearray(1 << 20)  # one small buffer: checking an entry costs no host memory
  with open(path, "rb") as f:
    while count := f.readinto(block):
      crc = zlib.crc32(memoryview(block)[:count], crc)
  if crc != description["crc32"]:
    raise Corrupt(f"{description['file']}: CRC-32 {crc:#010x}, expected {description['crc32']:#010x}")


def _map(directory: str, description: dict) -> np.ndarray:
  shape = tuple(description["shape"])
  if not np.prod(shape):  # np.memmap cannot map an empty file
    return np.zeros(shape, description["dtype"])
  return np.memmap(os.path.join(directory, description["file"]), description["dtype"], "r", shape=shape)


def read_dataset(directory: str, dataset: dict) -> Encoded | None:
  """A dataset of an entry as `Encoded`, every field memory-mapped (offsets in memory: 8 bytes per example); None
  for one that no chunk was added to."""
  if not dataset["fields"]:
    return None
  fields = {name: _map(directory, d) for name, d in dataset["fields"].items()}
  offsets = {f: np.concatenate([np.zeros(1, np.int64), fields[f"{f}.ends"]]) for f in ("ids", "starts")
             if f"{f}.ends" in fields}
  ragged = {f: Ragged(fields[f], offsets["ids"]) for f in TOKENS if f in fields}
  starts = Ragged(fields["starts"], offsets["starts"]) if "starts" in fields else None
  return Encoded(ragged["ids"], fields["labels"], fields["weights"], fields.get("cut"), ragged.get("tags"), starts,
                 fields.get("sentence"), fields.get("targets"), ragged.get("type_ids"))


def read_entry(directory: str) -> tuple[dict[str, Encoded], dict]:
  """(datasets by name, extra) of a complete entry; Corrupt when a file is missing, cut short or damaged."""
  try:
    with open(os.path.join(directory, META)) as f:
      meta = json.load(f)
    if meta.get("format") != FORMAT:
      raise Corrupt(f"cache format {meta.get('format')!r}, expected {FORMAT}")
    for dataset in meta["datasets"].values():
      for description in dataset["fields"].values():
        _check(directory, description)
    return {name: read_dataset(directory, d) for name, d in meta["datasets"].items()}, meta["extra"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise Corrupt(f"{META}: {type(e).__name__}: {e}") from None


# ---------------------------------------------------------------------------------------------------------------
# The cache.

_calls = itertools.count()  # get() calls of this process: every process of a run makes the same ones, in order


def get(root: str, key_parts: dict, build: Callable[[EntryWriter], None],
        log: Callable[[str], None] = print) -> tuple[dict[str, Encoded], dict]:
  """The entry of `key_parts` under `root`: mapped if it is there and sound, else built by `build` (which fills an
  EntryWriter; its UserErrors pass through and nothing is kept), then mapped.

  In a multi-process run process 0 looks first (and builds) while the others wait for its word through the
  coordination service: then they map its entry where the cache folder is shared (one build for the job), or build
  their own where it is not (each host its own disk); an error process 0 met (a bad row) is theirs too."""
  if jax.process_count() == 1:
    return _get(root, key_parts, build, log)
  tell, hear = _messages()
  if jax.process_index() == 0:
    try:
      result = _get(root, key_parts, build, log)
    except UserError as e:
      tell("result", f"error:{e}")
      raise
    tell("result", "ok")
    return result
  if (said := hear("result")).startswith("error:"):
    raise UserError(said.removeprefix("error:"))
  return _get(root, key_parts, build, log)


def _messages() -> tuple[Callable[[str, str], None], Callable[[str], str]]:
  """(tell, hear) of this get's words, through JAX's coordination service (the key-value store mtl_jax/distributed.py
  uses too); hear waits for the word."""
  from jax._src import distributed
  client, word = distributed.global_state.client, f"mtl_jax/token_cache/{next(_calls)}"
  return (lambda what, value: client.key_value_set(f"{word}/{what}", value, allow_overwrite=True),
          lambda what: client.blocking_key_value_get(f"{word}/{what}", WAIT_MS))


def get_in_shares(root: str, key_parts: dict, name: str, chunks: Callable[[tuple[int, int]], Iterable[Encoded]],
                  log: Callable[[str], None] = print) -> Encoded:
  """`get` of an entry holding one dataset, `name`, whose examples can be built in shares: `chunks((i, n))` gives
  share i of n (a table file's byte ranges; the shares in order are the whole). In a multi-process run where the
  entry is missing, every process builds its own share as an entry of its own, process 0 joins them in order into
  the entry, which the others then map: the job reads and tokenizes each row once, all processes at once. An error
  in any share (the first in the file) stops every process with the same line. Where a process cannot see the
  others' shares (no shared cache folder), every process builds the whole entry itself."""
  whole = lambda entry: entry.add(name, chunks((0, 1)))
  count, me = jax.process_count(), jax.process_index()
  if count == 1:
    return _get(root, key_parts, whole, log)[0][name]
  tell, hear = _messages()
  path = os.path.join(root, entry_key(key_parts))
  if me == 0:
    tell("state", "ready" if _open(path, log) else "build")
  if hear("state") == "build":
    shares = [{**key_parts, "share": [i, count]} for i in range(count)]
    try:
      _get(root, shares[me], lambda entry: entry.add(name, chunks((me, count))), log)
      tell(f"share{me}", "ok")
    except UserError as e:
      tell(f"share{me}", f"error:{e}")
    if me == 0:
      tell("result", _join(root, key_parts, shares, name, [hear(f"share{i}") for i in range(count)], log))
    result = hear("result")
    shutil.rmtree(os.path.join(root, entry_key(shares[me])), ignore_errors=True)
    if result.startswith("error:"):
      raise UserError(result.removeprefix("error:"))
  return _get(root, key_parts, whole, log)[0][name]


def _open(path: str, log: Callable[[str], None]) -> tuple[dict[str, Encoded], dict] | None:
  """The complete, undamaged entry at `path` (read_entry), or None: none there, or a damaged one (reported and
  removed)."""
  if not os.path.isdir(path):
    return None
  try:
    return read_entry(path)
  except Corrupt as e:
    log(f"token cache: {path} is damaged ({e}); rebuilding it")
    shutil.rmtree(path, ignore_errors=True)
    return None


def _join(root: str, key_parts: dict, shares: list[dict], name: str, said: list[str],
          log: Callable[[str], None]) -> str:
  """Process 0's part of `get_in_shares`: the entry of `key_parts` from the shares' entries, in order, copied a
  chunk at a time. Returns what the others hear: "ok", the first share's error, or "own" when a share's entry is
  not to be seen here (each process then builds the whole entry)."""
  if errors := [s for s in said if s.startswith("error:")]:
    return errors[0]
  paths = [os.path.join(root, entry_key(share)) for share in shares]
  if not all(os.path.isdir(p) for p in paths):
    return "own"

  def rows():
    for path in paths:
      if (part := read_entry(path)[0][name]) is None:  # a share without rows
        continue
      for start in range(0, len(part), JOIN_ROWS):
        yield part.take(np.arange(start, min(start + JOIN_ROWS, len(part))))

  _get(root, key_parts, lambda entry: entry.add(name, rows()), log)
  return "ok"


def _get(root: str, key_parts: dict, build: Callable[[EntryWriter], None],
         log: Callable[[str], None]) -> tuple[dict[str, Encoded], dict]:
  key = entry_key(key_parts)
  path = os.path.join(root, key)
  if (entry := _open(path, log)) is not None:
    return entry
  try:
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=root)
  except OSError as e:
    raise UserError(f"config.data.cache_dir: cannot write the token cache in {root} ({e.strerror or e}); give a "
                    f"writable folder, or \"{OFF}\"") from None
  try:
    entry = EntryWriter(tmp)
    build(entry)
    with open(os.path.join(tmp, META), "w") as f:
      json.dump({"format": FORMAT, "key": key_parts, "datasets": entry.datasets, "extra": entry.extra}, f,
                default=str)
    with contextlib.suppress(OSError):  # another process renamed its complete entry first: use that one
      os.rename(tmp, path)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return read_entry(path)
