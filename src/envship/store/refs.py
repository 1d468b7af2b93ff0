"""What a manifest in the store references: its blobs and their sizes, read for gc and verify.

Only the `layers` list matters here, so any manifest schema that keeps it (every one so far)
is understood, and the bytes are checked against the env id they are stored under.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from ..node import formats
from ..node.errors import ManifestInvalid
from .io import NotFound, Refused, StoreIO

__all__ = ["BlobRef", "read_refs", "read_all_refs", "BadManifest"]

READERS = 16  # manifests read at once


@dataclass(frozen=True)
class BlobRef:
    digest: str
    size: int

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


class BadManifest(StoreError):
    """A manifest in the store that cannot be read, or does not hash to its name."""

    def __init__(
        self, env_id: str, reason: str, refs: tuple[BlobRef, ...] | None = None
    ) -> None:
        super().__init__(f"env {env_id}: {reason}")
        self.env_id = env_id
        self.reason = reason
        self.refs = refs  # a newer schema's layers, still readable: gc keeps their blobs


def _layer_refs(layers: object) -> tuple[BlobRef, ...]:
    if not isinstance(layers, list):
        raise ValueError("no layers list")
    out = []
    for layer in layers:
        digest, size = layer["digest"], layer["size"]
        if not formats.is_digest(digest):
            raise ValueError(f"bad digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"bad size {size!r}")
        out.append(BlobRef(digest, size))
    return tuple(out)


def _parse(env_id: str, data: bytes) -> tuple[BlobRef, ...]:
    source = f"env {env_id}"
    obj: Any = None
    try:
        obj = formats.parse_document(data, source)
        formats.check_manifest(obj, source)  # the one validator, in the node's order
        if formats.env_id_of(obj) != env_id:
            raise BadManifest(
                env_id, "content does not hash to its env id (modified in the store)")
        return _layer_refs(obj["layers"])
    except ManifestInvalid as exc:
        reason = str(exc).split(": ", 1)[-1]
        newer = isinstance(obj, dict) and obj.get("schema") not in formats.SCHEMAS
        try:  # a newer envship's manifest: refused here, but its blobs are not garbage
            refs = _layer_refs(obj.get("layers")) if newer else None
        except (ValueError, KeyError, TypeError):
            refs = None
        raise BadManifest(env_id, reason, refs) from None


def read_refs(io: StoreIO, env_id: str) -> tuple[BlobRef, ...] | None:
    """The blobs env *env_id* references; None if its manifest is gone. Raises BadManifest."""
    try:
        data = io.read(formats.env_key(env_id), f"env {env_id}")
    except NotFound:
        return None
    except Refused as exc:
        raise BadManifest(env_id, str(exc)) from None
    return _parse(env_id, data)


def read_all_refs(io: StoreIO, env_ids: Iterable[str]
                  ) -> dict[str, tuple[BlobRef, ...] | BadManifest | None]:
    """env id -> its refs, None (gone meanwhile) or the BadManifest it raised; read in parallel."""
    ids = list(env_ids)

    def one(env_id: str) -> tuple[BlobRef, ...] | BadManifest | None:
        try:
            return read_refs(io, env_id)
        except BadManifest as exc:
            return exc

    if not ids:
        return {}
    with ThreadPoolExecutor(max_workers=min(READERS, len(ids)),
                            thread_name_prefix="envship-read") as pool:
        return dict(zip(ids, pool.map(one, ids), strict=True))
