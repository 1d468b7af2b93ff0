"""envship: ship a Python environment and its code to a cluster as content-addressed layers."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs `envship exec` start-up
if TYPE_CHECKING:
    from ._version import __version__
    from .env import Env, locate_env, open_manifest
    from .errors import EnvshipError
    from .node.errors import NodeError
    from .packing.diff import EnvDiff, diff_manifests
    from .packing.manifest import Manifest
    from .packing.pex import build_pex_for
    from .packing.pipeline import PackResult
    from .packing.sources.snapshot import choose_target
    from .shipping import ShipResult, pack, ship, ship_result
    from .store import open_store

__all__ = [
    "Env",
    "EnvDiff",
    "EnvshipError",
    "Manifest",
    "NodeError",
    "PackResult",
    "ShipResult",
    "__version__",
    "build_pex_for",
    "choose_target",
    "diff_manifests",
    "locate_env",
    "open_manifest",
    "open_store",
    "pack",
    "ship",
    "ship_result",
]

# Public names, imported on first use: `envship exec` imports this package on its start-up
# fast path, which must stay standard-library only. Engine modules (envship.spark,
# envship.dask, ...) are submodules, imported as `import envship.spark`.
_LAZY = {
    "Env": "env",
    "EnvDiff": "packing.diff",
    "EnvshipError": "errors",
    "Manifest": "packing.manifest",
    "NodeError": "node.errors",
    "PackResult": "packing.pipeline",
    "ShipResult": "shipping",
    "build_pex_for": "packing.pex",
    "choose_target": "packing.sources.snapshot",
    "diff_manifests": "packing.diff",
    "locate_env": "env",
    "open_manifest": "env",
    "pack": "shipping",
    "ship": "shipping",
    "ship_result": "shipping",
    "open_store": "store",
    "__version__": "_version",
}


def __getattr__(name: str) -> object:
    import importlib

    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    from .engines import top_level  # the one registry of engines (standard library only)

    # `envship.dask.cluster(...)`, `envship.store.open_store(...)` after a bare `import envship`
    if not name.startswith("_") and (name in top_level() or name in _SUBPACKAGES):
        return importlib.import_module(f"{__name__}.{name}")  # does not import the engine
    raise AttributeError(f"module 'envship' has no attribute {name!r}")


_SUBPACKAGES = ("errors", "store", "node", "engines")  # public modules besides the engines


def __dir__() -> list[str]:
    from .engines import top_level

    dunders = (n for n in globals() if n.startswith("__"))
    return sorted({*dunders, *__all__, *_SUBPACKAGES, *top_level()})
