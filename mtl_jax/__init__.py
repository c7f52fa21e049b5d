"""mtl_jax: multi-task learning on text with one shared JAX/Flax encoder and many task heads."""

__version__ = "0.1.0"
