"""Throughput benchmarks of mtl_jax against a PyTorch / transformers reference (see benchmarks/README.md)."""
