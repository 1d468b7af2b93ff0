"""What a store's backend can do, decided once per store: the one place backend quirks live.

Operations ask the record (``caps.atomic_rename``, ``caps.s3``), never the protocol name, so
a new backend or quirk is a line here plus the code that uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Capabilities", "capabilities_of", "OBJECT_STORES", "S3_PROTOCOLS", "SIGNERS"]

# Writes are atomic per object (a PUT or a completed multipart upload) and there is no atomic
# rename: files go straight to their final key.
OBJECT_STORES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "oss", "r2"}
)
S3_PROTOCOLS = frozenset({"s3", "s3a"})  # s3fs: bounded botocore retries, raw S3 requests

# What signs URLs on each backend (the client signs locally, with a key).
_GCS_SIGNER = ("GCS signs with a service-account key: point GOOGLE_APPLICATION_CREDENTIALS "
               "(or -s token=FILE) at one")
_AZURE_SIGNER = ("Azure signs with the account key: give a connection string with AccountKey "
                 "or AZURE_STORAGE_ACCOUNT_KEY")
SIGNERS = {"gs": _GCS_SIGNER, "gcs": _GCS_SIGNER, "az": _AZURE_SIGNER, "abfs": _AZURE_SIGNER,
           "abfss": _AZURE_SIGNER}


@dataclass(frozen=True)
class Capabilities:
    """One store backend's abilities (see :func:`capabilities_of`)."""

    protocol: str  # "file", "s3", "gs", "memory", ...
    object_store: bool  # atomic whole-object writes, no directories, no rename
    atomic_rename: bool  # write a temp sibling, then rename it into place
    local: bool  # a local filesystem: hard links, and listings cheaper than many checks
    s3: Callable[..., Any] | None = None  # s3fs's ``call_s3``: raw S3 requests (list,
    # batch deletes, multipart uploads); None where the backend has no such client


def capabilities_of(protocol: str, fs: Any) -> Capabilities:
    """The capabilities of *fs* (an fsspec filesystem) opened for *protocol*."""
    object_store = protocol in OBJECT_STORES
    call_s3 = getattr(fs, "call_s3", None)
    s3 = call_s3 if protocol in S3_PROTOCOLS and callable(call_s3) else None
    return Capabilities(
        protocol=protocol,
        object_store=object_store,
        atomic_rename=not object_store,
        local=protocol == "file",
        s3=s3,
    )
