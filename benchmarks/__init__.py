"""Benchmarks: envship against cluster-pack, venv-pack and pex, with physical floors."""
