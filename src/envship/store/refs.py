"""What a manifest in the store references: its blobs and their sizes, read for gc and verify.

Only the `layers` list matters here, so any manifest schema that keeps it (every one so far)
is understood, and the bytes are checked against the env id they are stored under.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import ManifestError, StoreError
from ..node.formats import env_key, is_digest, parse_document
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

    def __init__(self, env_id: str, reason: str) -> None:
        super().__init__(f"env {env_id}: {reason}")
        self.env_id = env_id
        self.reason = reason


def _parse(env_id: str, data: bytes, source: str) -> tuple[BlobRef, ...]:
    if hashlib.sha256(data).hexdigest() != env_id:
        raise BadManifest(env_id, "content does not hash to its env id (modified in the store)")
    try:
        layers = parse_document(data, source)["layers"]
        out = []
        for layer in layers:
            digest, size = layer["digest"], layer["size"]
            if not is_digest(digest):
                raise ValueError(f"bad digest {digest!r}")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError(f"bad size {size!r}")
            out.append(BlobRef(digest, size))
    except (ManifestError, ValueError, KeyError, TypeError) as exc:
        raise BadManifest(env_id, f"not a manifest ({exc})") from None
    return tuple(out)


def read_refs(io: StoreIO, env_id: str) -> tuple[BlobRef, ...] | None:
    """The blobs env *env_id* references; None if its manifest is gone. Raises BadManifest."""
    key = env_key(env_id)
    try:
        data = io.read(key, f"env {env_id}")
    except NotFound:
        return None
    except Refused as exc:
        raise BadManifest(env_id, str(exc)) from None
    return _parse(env_id, data, io.url_of(key))


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
