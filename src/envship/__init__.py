"""envship: ship a Python environment and its code to a cluster as content-addressed layers."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs `envship exec` start-up
if TYPE_CHECKING:
    from .errors import EnvshipError
    from .manifest import Manifest

__all__ = ["EnvshipError", "Manifest", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy: `envship exec` imports this package on its start-up fast path (stdlib only, no json).
    if name == "EnvshipError":
        from .errors import EnvshipError

        return EnvshipError
    if name == "Manifest":
        from .manifest import Manifest

        return Manifest
    raise AttributeError(f"module 'envship' has no attribute {name!r}")
