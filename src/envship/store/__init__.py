"""Content-addressed env store over fsspec: publish, fetch, tag, presign, collect, verify.

Three tiers: :mod:`.io` (where a store is, its primitives with retry and error mapping, backend
capabilities), :mod:`.protocol` (leases and sweeps: the publish/gc protocol of docs/store.md),
and the operations on top (publish, fetch, tags, listing, gc, verify, presign), joined by
:class:`Store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core import Store, open_store
from .io import parse_storage_options, redact_url
from .io.location import has_signed_url, redact_signed_urls
from .protocol import Timing
from .publish import LayerUpload, PublishResult

if TYPE_CHECKING:
    from ..paths import default_store_url
    from .gc import GcResult, parse_duration
    from .listing import EnvInfo
    from .presign import PresignResult
    from .verify import Damage, VerifyResult

# Loaded on first use: a pack or a ship never needs gc, presign, verify or listings.
_LAZY = {"EnvInfo": ".listing", "GcResult": ".gc", "parse_duration": ".gc",
         "PresignResult": ".presign", "Damage": ".verify", "VerifyResult": ".verify",
         "default_store_url": "..paths"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
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
    "parse_storage_options",
    "parse_duration",
    "redact_url",
    "redact_signed_urls",
    "has_signed_url",
    "default_store_url",
]
