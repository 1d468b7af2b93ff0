"""Node runtime: fetch, verify, unpack and assemble an env in the node cache (stdlib only)."""

from __future__ import annotations

from .errors import NodeError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `typing` costs start-up time on the warm path
if TYPE_CHECKING:
    from .runtime import View, prepare

__all__ = ["NodeError", "View", "prepare"]


def __getattr__(name: str) -> object:
    # `envship exec` imports this package on every start: keep json/tarfile/urllib out of it.
    if name in ("View", "prepare"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
