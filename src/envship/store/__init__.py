"""Content-addressed env store over fsspec: publish, fetch, tag, presign, collect, verify."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core import Store, open_store
from .listing import EnvInfo
from .protocol import Timing
from .publish import LayerUpload, PublishResult

if TYPE_CHECKING:
    from .gc import GcResult
    from .presign import PresignResult
    from .verify import Damage, VerifyResult

# Loaded on first use: a pack or a ship never needs gc, presign or verify.
_LAZY = {"GcResult": "gc", "PresignResult": "presign", "Damage": "verify",
         "VerifyResult": "verify"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Store",
    "open_store",
    "PublishResult",
    "LayerUpload",
    "GcResult",
    "EnvInfo",
    "PresignResult",
    "VerifyResult",
    "Damage",
    "Timing",
]
