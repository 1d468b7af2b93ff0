"""Presigned manifests: layers carry HTTPS URLs, so nodes need neither credentials nor s3fs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError
from ..packing.manifest import Manifest
from . import retry
from .fetch import read_manifest
from .fs import StoreLocation
from .transfer import write_bytes

__all__ = ["PresignResult", "presign", "sign"]

# What signs URLs on each backend (the client signs locally, with a key).
_SIGNERS = {
    "gs": "GCS signs with a service-account key: point GOOGLE_APPLICATION_CREDENTIALS (or "
          "-s token=FILE) at one",
    "gcs": "GCS signs with a service-account key: point GOOGLE_APPLICATION_CREDENTIALS (or "
           "-s token=FILE) at one",
    "az": "Azure signs with the account key: give a connection string with AccountKey or "
          "AZURE_STORAGE_ACCOUNT_KEY",
    "abfs": "Azure signs with the account key: give a connection string with AccountKey or "
            "AZURE_STORAGE_ACCOUNT_KEY",
}


@dataclass(frozen=True)
class PresignResult:
    env_id: str
    manifest: Manifest  # layers carry `url`; same env id
    location: str  # where the presigned manifest was written (store URL or local path)
    url: str  # what to hand to nodes: a presigned URL of it, or the local path given
    expires: int


def sign(loc: StoreLocation, path: str, expires: int) -> str:
    """A presigned HTTP(S) URL for *path*, or a clear error for stores that cannot sign."""
    try:
        url = loc.fs.sign(path, expiration=expires)
    except NotImplementedError:
        raise StoreError(
            f"store {loc.url} ({loc.protocol}://) cannot make presigned URLs; use an object "
            "store (s3://, gs://, az://), or give nodes the env URI and access to the store"
        ) from None
    except (AttributeError, ValueError, TypeError) as exc:  # the credentials cannot sign
        how = _SIGNERS.get(loc.protocol, "use credentials that can sign URLs")
        raise StoreError(
            f"store {loc.url} cannot make presigned URLs with the credentials in use "
            f"({type(exc).__name__}: {loc.scrub(str(exc).splitlines()[0][:160])}); {how}"
        ) from None
    except Exception as exc:
        raise retry.as_store_error(exc, f"signing {path}", loc) from None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise StoreError(f"store {loc.url} returned no HTTP(S) presigned URL for {path}")
    return url


def presign(
    loc: StoreLocation,
    env_id: str,
    policy: retry.RetryPolicy,
    *,
    expires: int = 3600,
    output: Path | None = None,
) -> PresignResult:
    """Write `envs/<env-id>.presigned.json` (or *output*) whose layers carry presigned URLs."""
    if expires <= 0:
        raise StoreError(f"--expires must be a positive number of seconds, not {expires}")
    manifest = read_manifest(loc, env_id, policy)
    signed = dataclasses.replace(
        manifest,
        layers=tuple(
            dataclasses.replace(lay, url=sign(loc, loc.blob_path(lay.digest), expires))
            for lay in manifest.layers
        ),
    )
    data = signed.to_json()
    if output is not None:
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(output)
        return PresignResult(env_id, signed, str(output), str(output), expires)
    path = loc.env_path(env_id, ".presigned.json")
    try:
        retry.call(lambda: write_bytes(loc, path, data), "writing presigned manifest", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, "writing presigned manifest", loc) from None
    return PresignResult(
        env_id, signed, loc.url_of("envs", f"{env_id}.presigned.json"),
        sign(loc, path, expires), expires,
    )
