"""Read from a store: verified blob downloads and manifests checked against their env id."""

from __future__ import annotations

from pathlib import Path

from ..errors import EnvNotFound, ManifestError
from ..node.formats import digest_hex, env_key
from ..packing.manifest import Manifest
from ..progress import BytesDone
from .io import NotFound, StoreIO
from .io.location import blob

__all__ = ["fetch_blob", "read_manifest"]


def read_manifest(io: StoreIO, env_id: str) -> Manifest:
    """`envs/<env_id>.json`, parsed, and checked to really be env *env_id*; EnvNotFound if
    the store has no such env."""
    key = env_key(env_id)
    source = io.url_of(key)
    try:
        data = io.read(key, f"env {env_id}")
    except NotFound as exc:
        raise EnvNotFound(str(exc)) from None
    manifest = Manifest.from_json(data, source=source)
    if manifest.env_id != env_id:
        raise ManifestError(
            f"{source}: content hashes to env id {manifest.env_id}, not {env_id}; the file was "
            "modified in the store: ship the env again"
        )
    return manifest


def fetch_blob(io: StoreIO, digest: str, dest: Path, progress: BytesDone | None = None
               ) -> Path:
    """Download blob *digest* to *dest*, verifying its sha256; nothing corrupt is kept."""
    key = blob(digest)
    what = f"blob {digest}"
    try:
        io.download(key, Path(dest), digest_hex(digest), what, progress)
    except NotFound:
        raise NotFound(
            f"{what} not found in store {io.url}; the env is incomplete: ship it again"
        ) from None
    return Path(dest)
