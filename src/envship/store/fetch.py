"""Read from a store: verified blob downloads and manifests checked against their env id."""

from __future__ import annotations

from pathlib import Path

from ..errors import ManifestError, StoreError
from ..packing.manifest import Manifest
from ..progress import BytesDone
from . import retry
from .fs import StoreLocation, read_bounded
from .transfer import download_file

__all__ = ["fetch_blob", "read_manifest", "read_text"]


def read_text(loc: StoreLocation, path: str, what: str, policy: retry.RetryPolicy) -> bytes:
    """The bytes of a small store file; a missing one raises a clear StoreError."""

    def read() -> bytes:
        data: bytes = read_bounded(loc, path, what)
        return data

    try:
        return retry.call(read, f"reading {what}", loc, policy)
    except FileNotFoundError:
        raise StoreError(f"{what} not found in store {loc.url}") from None
    except StoreError:
        raise
    except Exception as exc:
        raise retry.as_store_error(exc, f"reading {what}", loc) from None


def read_manifest(loc: StoreLocation, env_id: str, policy: retry.RetryPolicy) -> Manifest:
    """`envs/<env_id>.json`, parsed, and checked to really be env *env_id*."""
    path = loc.env_path(env_id)
    source = loc.url_of("envs", f"{env_id}.json")
    data = read_text(loc, path, f"env {env_id}", policy)
    manifest = Manifest.from_json(data, source=source)
    if manifest.env_id != env_id:
        raise ManifestError(
            f"{source}: content hashes to env id {manifest.env_id}, not {env_id}; the file was "
            "modified in the store: ship the env again"
        )
    return manifest


def fetch_blob(
    loc: StoreLocation,
    digest: str,
    dest: Path,
    policy: retry.RetryPolicy,
    progress: BytesDone | None = None,
) -> Path:
    """Download blob *digest* to *dest*, verifying its sha256; nothing corrupt is kept."""
    path = loc.blob_path(digest)
    expect = digest.split(":", 1)[1]
    what = f"blob {digest}"
    dest = Path(dest)

    def attempt() -> int:
        return download_file(loc, path, dest, expect, what, progress)

    try:
        retry.call(attempt, f"downloading {what}", loc, policy)
    except FileNotFoundError:
        raise StoreError(
            f"{what} not found in store {loc.url}; the env is incomplete: ship it again"
        ) from None
    except StoreError:
        raise
    except Exception as exc:
        raise retry.as_store_error(exc, f"downloading {what}", loc) from None
    return dest
