"""Development-only tooling: local clusters, real runtimes, load generators.

Not part of the product: the operator and node-agent images copy only ``operator/`` and
``node-agent/``, so nothing here reaches them. Tests, benchmarks and ``make demo`` use it.
"""
