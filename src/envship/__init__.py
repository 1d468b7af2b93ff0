"""envship: ship a Python environment and its code to a cluster as content-addressed layers."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs `envship exec` start-up
if TYPE_CHECKING:
    from .env import Env
    from .errors import EnvshipError
    from .manifest import Manifest
    from .packing import PackResult, pack
    from .shipping import ship
    from .store import open_store

__all__ = [
    "Env",
    "EnvshipError",
    "Manifest",
    "PackResult",
    "__version__",
    "open_store",
    "pack",
    "ship",
]
__version__ = "0.1.0"

# Public names, imported on first use: `envship exec` imports this package on its start-up
# fast path, which must stay standard-library only. Engine modules (envship.spark,
# envship.dask, ...) are submodules, imported as `import envship.spark`.
_LAZY = {
    "Env": "env",
    "EnvshipError": "errors",
    "Manifest": "manifest",
    "PackResult": "packing",
    "pack": "packing",
    "ship": "shipping",
    "open_store": "store",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None and name == "spark":  # `envship.spark.session(...)` after `import envship`
        import importlib

        return importlib.import_module(f"{__name__}.spark")  # does not import pyspark
    if module is None:
        raise AttributeError(f"module 'envship' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
