"""Keep host memory that XLA frees for its next use, instead of giving it back to the kernel after every step.

XLA's CPU runtime allocates all of a step's temporaries as one block (359 MB for MiniLM's train step on 896 tokens)
from a worker thread and frees it when the step ends. glibc serves a block that large from a fresh mmap and returns it
with munmap, so every step touches those pages anew: 92k page faults and 0.21 s of kernel time per step on 2 CPU cores
(`python benchmarks/step_profile.py` prints faults and kernel time per step). With every thread on glibc's main arena,
no mmap for large blocks and no trimming, the block is reused: 0 faults, the step 15-20% faster. The costs: the heap
grows by a block now and then until it holds a few (MiniLM training with token budgets: 2.7 GB resident instead of
2.0 GB), the process keeps its peak host memory until it exits, and all threads share one malloc arena (with tiny
models its lock contention costs 10-20%). No trimming means none at all: with a ceiling (mallopt takes an int, so at
most 2 GB), a step whose temporaries pass it is trimmed and faults in again every step (fixed-length 4096-token
batches: 0.25M faults and 1.5 s of kernel time per step).

On one arena the tokenizers library's threads (Rust's rayon) wait on each other's malloc: tokenizing a table took 2.7x
as long as with glibc's defaults (100k rows: 10.8 s instead of 4.0 s on 2 cores), and 1.6x as long as one thread
(6.9 s). So the setting also turns the library's threads off (TOKENIZERS_PARALLELISM=false unless set); giving
them arenas of their own (started before the limit) was faster but let XLA's threads land on their arenas now and
then, and lose the reuse. Processes of a multi-process run tokenize their shares of a table side by side.
`keep_freed_memory()` is called by the entry points (`mtl_jax.cli.run`: main, predict, evaluate; the benchmarks'
`common.main`) before JAX initialises its backend, where XLA's worker threads start (a thread keeps the arena it
first allocated from; the two threads `import jax` leaves are idle: tested in tests/test_host_memory.py). Importing
mtl_jax leaves the allocator alone, so a program that imports it (a notebook, another framework's loop) keeps its
own. It is for CPU training: where an accelerator plugin for JAX is installed (CUDA, ROCm, TPU) the temporaries live
on the device, so it leaves the allocator alone unless JAX_PLATFORMS=cpu. Set MTL_JAX_KEEP_HOST_MEMORY=0 to leave it
alone always. It does nothing outside Linux with glibc (other allocators keep large blocks on their own terms).
"""

import ctypes
import importlib.metadata
import importlib.util
import os
import platform
import sys

ENV = "MTL_JAX_KEEP_HOST_MEMORY"
# mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1))  # -1: the largest size_t, never trim


def accelerator_host() -> bool:
  """Whether JAX may run on an accelerator here: a PJRT plugin (jax_plugins entry point) or libtpu is installed, and
  JAX_PLATFORMS does not say cpu."""
  if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
    return False
  return bool(importlib.metadata.entry_points(group="jax_plugins")) or importlib.util.find_spec("libtpu") is not None


def keep_freed_memory() -> bool:
  """Sets glibc's allocator to keep freed memory (see the module doc); True when every setting took."""
  if (os.environ.get(ENV, "1") == "0" or sys.platform != "linux" or platform.libc_ver()[0] != "glibc"
      or accelerator_host()):
    return False
  os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # before the tokenizers library starts its threads
  mallopt = ctypes.CDLL(None).mallopt
  return all([mallopt(param, value) == 1 for param, value in SETTINGS])  # a list: every setting is made
