"""Node runtime: fetch, verify, unpack and assemble an env in the node cache (stdlib only)."""

from __future__ import annotations

from .errors import NodeError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `typing` costs start-up time on the warm path
if TYPE_CHECKING:
    from .__main__ import main
    from .cache import cache_root
    from .fetch import parse_size
    from .prune import CacheEntry, list_cache
    from .prune import prune as prune_cache
    from .runtime import View, prepare, warm
    from .script import script_text, write_script

__all__ = [
    "CacheEntry", "NodeError", "View", "cache_root", "list_cache", "main", "parse_size",
    "prepare", "prune_cache", "script_text", "warm", "write_script",
]

# Public name -> (module, its name there), imported on first use: `envship exec` imports this
# package on every start, so json/tarfile/urllib stay out of it. `prune_cache` is not `prune`:
# once the submodule envship.node.prune is imported, that name is the module.
_LAZY = {
    "View": ("runtime", "View"), "prepare": ("runtime", "prepare"), "warm": ("runtime", "warm"),
    "main": ("__main__", "main"), "cache_root": ("cache", "cache_root"),
    "parse_size": ("fetch", "parse_size"), "CacheEntry": ("prune", "CacheEntry"),
    "list_cache": ("prune", "list_cache"), "prune_cache": ("prune", "prune"),
    "script_text": ("script", "script_text"), "write_script": ("script", "write_script"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        try:
            loaded = importlib.import_module(f"{__name__}.{module}")
        except ImportError:  # the single-file runtime bundles no `script` module
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        return getattr(loaded, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
