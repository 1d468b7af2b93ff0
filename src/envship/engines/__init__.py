"""Engine adapters: start processes of Spark, Dask, Ray, YARN and others inside an env.

One module (or package) per engine, registered by name in :data:`ENGINES` and imported on
first use, so a missing optional dependency only matters to the engine that needs it. The
registry is the one list: ``envship.<name>`` (for engines marked ``top_level``), the layout
test and the docs' list of engines all read it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple

from ..errors import EngineError

__all__ = ["ENGINES", "Engine", "engine", "top_level"]


class Engine(NamedTuple):
    module: str  # the adapter module; importing it does not import the engine
    needs: str = ""  # the distribution it needs at run time ("" for none)
    extra: str = ""  # the envship extra that installs it
    top_level: bool = False  # also importable as envship.<name> (a one-line shim module)


ENGINES: dict[str, Engine] = {
    "exec": Engine("envship.engines.exec"),
    "spark": Engine("envship.engines.spark", "pyspark", "spark", top_level=True),
    "dask": Engine("envship.engines.dask", "distributed", "dask", top_level=True),
    "ray": Engine("envship.engines.ray", "ray", "ray", top_level=True),
    "yarn": Engine("envship.engines.yarn", "skein", "yarn", top_level=True),
    "tensorflow": Engine("envship.engines.tensorflow"),  # TF_CONFIG for workers started by exec
}


def top_level() -> frozenset[str]:
    """The engines reachable as ``envship.<name>``."""
    return frozenset(name for name, info in ENGINES.items() if info.top_level)


def engine(name: str) -> ModuleType:
    """The adapter module of engine *name* (importing it does not import the engine itself)."""
    try:
        info = ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise EngineError(f"unknown engine {name!r}; known engines: {known}") from None
    return importlib.import_module(info.module)
