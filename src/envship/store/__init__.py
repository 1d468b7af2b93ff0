"""Content-addressed env store over fsspec: publish, fetch, tag, presign, collect, verify."""

from __future__ import annotations

from .core import Store, open_store
from .gc import GcResult
from .listing import EnvInfo
from .presign import PresignResult
from .protocol import Timing
from .publish import LayerUpload, PublishResult
from .verify import Damage, VerifyResult

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
