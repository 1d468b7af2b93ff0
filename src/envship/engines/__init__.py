"""Engine adapters: start processes of Spark, Dask, Ray, YARN and others inside an env.

One module (or package) per engine, registered by name in :data:`ENGINES` and imported on
first use, so a missing optional dependency only matters to the engine that needs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import EngineError

__all__ = ["ENGINES", "engine"]

# name -> (module, the distribution it needs at run time or "" for none)
ENGINES: dict[str, tuple[str, str]] = {
    "exec": ("envship.engines.exec", ""),
    "spark": ("envship.engines.spark", "pyspark"),
    "dask": ("envship.engines.dask", "distributed"),
    "ray": ("envship.engines.ray", "ray"),
    "yarn": ("envship.engines.yarn", "skein"),
    "tensorflow": ("envship.engines.tensorflow", ""),  # TF_CONFIG for workers started by exec
}


def engine(name: str) -> ModuleType:
    """The adapter module of engine *name* (importing it does not import the engine itself)."""
    try:
        module, _needs = ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise EngineError(f"unknown engine {name!r}; known engines: {known}") from None
    return importlib.import_module(module)
