"""mtl_jax.host_memory: once an entry point has called keep_freed_memory(), a jitted function's large temporary block is
reused from call to call instead of being faulted in anew; importing mtl_jax alone leaves the allocator as it is
(each case in a fresh process: the setting must precede JAX's threads)."""

import json
import os
import subprocess
import sys

from runs import REPO

# exp over 16M floats, then read in reverse: XLA keeps the 64 MB of exps in a temporary block larger than anything
# glibc keeps by itself. The script counts the calls that fault in at least half of that block's pages: with the
# setting, the heap grows by a block now and then (it keeps a few) and the other calls fault in nothing.
SCRIPT = r"""
import json, resource, sys
import jax, jax.numpy as jnp  # imported first, as by the predict and evaluate CLIs: no backend yet
from mtl_jax import host_memory
if sys.argv[1] == "apply":
  host_memory.keep_freed_memory()  # as mtl_jax's entry points do
f = jax.jit(lambda x: (lambda y: (y * y[::-1]).sum())(jnp.exp(x) + x.sum()))
x = jnp.ones(16 * 2**20, jnp.float32)
pages = f.lower(x).compile().memory_analysis().temp_size_in_bytes / resource.getpagesize()
for _ in range(8):
  f(x).block_until_ready()
faulting = 0
for _ in range(20):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(x).block_until_ready()
  faulting += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before > pages / 2
print(json.dumps({"temp_pages": pages, "faulting_calls": faulting}))
"""


def run_script(keep: str, apply: bool = True) -> dict:
  env = {**os.environ, "MTL_JAX_KEEP_HOST_MEMORY": keep}
  out = subprocess.run([sys.executable, "-c", SCRIPT, "apply" if apply else "import"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_temporaries_fault_in_every_call_without_it_and_are_reused_with_it():
  off, imported, on = run_script("0"), run_script("1", apply=False), run_script("1")
  assert off["temp_pages"] >= 16 * 2**20 * 4 / 4096  # the block is as large as the script means it to be
  assert off["faulting_calls"] == 20, off  # opted out: glibc's default, fresh pages every call
  assert imported["faulting_calls"] == 20, imported  # importing mtl_jax changes nothing
  assert on["faulting_calls"] < 10, on  # most calls reuse the block
