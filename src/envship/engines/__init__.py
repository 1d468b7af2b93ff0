"""Engine adapters: start processes of Spark, Dask, Ray, YARN and others inside an env."""

from __future__ import annotations

__all__: list[str] = []
