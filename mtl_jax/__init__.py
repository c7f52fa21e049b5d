"""mtl_jax: multi-task learning on text with one shared JAX/Flax encoder and many task heads."""

from mtl_jax import host_memory

__version__ = "0.1.0"

host_memory.keep_freed_memory()  # before JAX starts its threads; see mtl_jax/host_memory.py
