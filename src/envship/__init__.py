"""envship: ship a Python environment and its code to a cluster as content-addressed layers."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs `envship exec` start-up
if TYPE_CHECKING:
    from ._version import __version__
    from .env import Env
    from .errors import EnvshipError
    from .node.errors import NodeError
    from .packing.manifest import Manifest
    from .packing.pipeline import PackResult
    from .shipping import pack, ship
    from .store import open_store

__all__ = [
    "Env",
    "EnvshipError",
    "Manifest",
    "NodeError",
    "PackResult",
    "__version__",
    "open_store",
    "pack",
    "ship",
]

# Public names, imported on first use: `envship exec` imports this package on its start-up
# fast path, which must stay standard-library only. Engine modules (envship.spark,
# envship.dask, ...) are submodules, imported as `import envship.spark`.
_LAZY = {
    "Env": "env",
    "EnvshipError": "errors",
    "Manifest": "packing.manifest",
    "NodeError": "node.errors",
    "PackResult": "packing.pipeline",
    "pack": "shipping",
    "ship": "shipping",
    "open_store": "store",
    "__version__": "_version",
}


def __getattr__(name: str) -> object:
    import importlib

    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    from .engines import top_level  # the one registry of engines (standard library only)

    # `envship.dask.cluster(...)` after a bare `import envship`
    if not name.startswith("_") and name in top_level():
        return importlib.import_module(f"{__name__}.{name}")  # does not import the engine
    raise AttributeError(f"module 'envship' has no attribute {name!r}")
