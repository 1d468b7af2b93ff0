"""Publish an env: upload missing blobs in parallel, verify them, then write the manifest."""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..packing.manifest import LayerRef, Manifest, canonical_json
from . import retry
from .exists import existing_blobs
from .fs import StoreLocation
from .transfer import upload_file, write_bytes

__all__ = ["LayerUpload", "PublishResult", "Progress", "publish", "UPLOADS_ENV"]

log = logging.getLogger(__name__)

UPLOADS_ENV = "ENVSHIP_STORE_UPLOADS"
Progress = Callable[[str, int, int], None]
"""`progress(digest, bytes_just_sent, blob_size)`; called from upload threads."""


@dataclass(frozen=True)
class LayerUpload:
    kind: str
    digest: str
    size: int
    uploaded: bool  # False: the store already held it


@dataclass(frozen=True)
class PublishResult:
    env_id: str
    env_uri: str
    layers: tuple[LayerUpload, ...]
    bytes_sent: int
    manifest_written: bool  # False: the same manifest was already there
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "env_uri": self.env_uri,
            "layers": [
                {"kind": x.kind, "digest": x.digest, "size": x.size, "uploaded": x.uploaded}
                for x in self.layers
            ],
            "bytes_sent": self.bytes_sent,
            "manifest_written": self.manifest_written,
            "seconds": round(self.seconds, 3),
        }


def _workers() -> int:
    raw = os.environ.get(UPLOADS_ENV, "")
    try:
        return max(1, int(raw)) if raw else 4
    except ValueError:
        raise StoreError(f"{UPLOADS_ENV}={raw!r} is not a number of parallel uploads") from None


def _present(loc: StoreLocation, layer: LayerRef, policy: retry.RetryPolicy) -> bool:
    """The blob is there with the right size (a wrong-size object is replaced)."""
    path = loc.blob_path(layer.digest)

    def check() -> bool:
        loc.fs.invalidate_cache(path)  # a cached listing may predate another process's gc
        try:
            info = loc.fs.info(path)
        except FileNotFoundError:
            return False
        return bool(info.get("size") == layer.size)

    return retry.call(check, f"checking blob {layer.digest}", loc, policy)


def _upload(
    loc: StoreLocation,
    layer: LayerRef,
    local: Path,
    policy: retry.RetryPolicy,
    progress: Progress | None,
) -> int:
    path = loc.blob_path(layer.digest)
    sent = [0]

    def tick(n: int) -> None:
        sent[0] += n
        if progress is not None:
            progress(layer.digest, n, layer.size)

    def attempt() -> int:
        if sent[0] and progress is not None:
            progress(layer.digest, -sent[0], layer.size)  # restart: undo counted bytes
        sent[0] = 0
        size = upload_file(loc, local, path, layer.hex, tick)
        if size != layer.size:
            raise StoreError(
                f"local blob {local} is {size} bytes but the manifest says {layer.size}; "
                "pack again"
            )
        loc.fs.invalidate_cache(path)
        remote = loc.fs.info(path).get("size")
        if remote != size:
            raise StoreError(
                f"blob {layer.digest} in store {loc.url} is {remote} bytes after upload, "
                f"expected {size}; the store may be out of space or failing"
            )
        return size

    return retry.call(attempt, f"uploading blob {layer.digest}", loc, policy)


def _provenance(env_id: str) -> bytes:
    from .. import __version__

    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    record = {
        "env": env_id,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user": user,
        "host": socket.gethostname(),
        "envship": __version__,
    }
    return json.dumps(record, sort_keys=True, indent=1).encode() + b"\n"


def _check_blobs(manifest: Manifest, blobs: Mapping[str, Path]) -> None:
    for layer in manifest.layers:
        local = blobs.get(layer.digest)
        if local is None:
            raise StoreError(
                f"no local file for the {layer.kind} layer {layer.digest}; pack again"
            )
        if not Path(local).is_file():
            raise StoreError(f"layer blob {local} ({layer.kind}) does not exist; pack again")


def publish(
    loc: StoreLocation,
    manifest: Manifest,
    blobs: Mapping[str, Path],
    *,
    policy: retry.RetryPolicy,
    progress: Progress | None = None,
    provenance: bool = True,
) -> PublishResult:
    """Make *manifest* and its blobs available in the store; the manifest goes last."""
    start = time.monotonic()
    _check_blobs(manifest, blobs)
    env_id = manifest.env_id
    layers = list(manifest.layers)
    lock = threading.Lock()
    total = [0]

    existing: set[str] = set()

    def one(layer: LayerRef) -> LayerUpload:
        if layer.digest in existing:
            log.info("blob %s already in %s", layer.digest, loc.url)
            return LayerUpload(layer.kind, layer.digest, layer.size, False)
        size = _upload(loc, layer, Path(blobs[layer.digest]), policy, progress)
        with lock:
            total[0] += size
        log.info("uploaded blob %s (%d bytes) to %s", layer.digest, size, loc.url)
        return LayerUpload(layer.kind, layer.digest, layer.size, True)

    manifest_path = loc.env_path(env_id)
    data = canonical_json(manifest.hashed_dict())

    def manifest_present() -> bool:
        def check() -> bool:
            loc.fs.invalidate_cache(manifest_path)
            try:
                return bool(loc.fs.info(manifest_path).get("size") == len(data))
            except FileNotFoundError:
                return False

        return retry.call(check, f"checking manifest {env_id}", loc, policy)

    try:
        # The manifest check runs alongside the blob checks: a warm ship is one round trip.
        with ThreadPoolExecutor(max_workers=min(_workers(), len(layers)) + 1) as pool:
            had_manifest = pool.submit(manifest_present)
            existing.update(existing_blobs(loc, layers, policy))  # one listing or HEADs
            done = list(pool.map(one, layers))
            present = had_manifest.result()
    except Exception as exc:
        raise retry.as_store_error(exc, f"publishing env {env_id}", loc) from None

    # Only now, with every blob in place, does the env become visible.
    written = False
    try:
        if not present:
            retry.call(lambda: write_bytes(loc, manifest_path, data),
                       f"writing manifest {env_id}", loc, policy)
            written = True
        if written and provenance:
            retry.call(
                lambda: write_bytes(loc, loc.env_path(env_id, ".provenance.json"),
                                    _provenance(env_id)),
                f"writing provenance of {env_id}", loc, policy,
            )
    except Exception as exc:
        raise retry.as_store_error(exc, f"writing manifest {env_id}", loc) from None
    return PublishResult(
        env_id=env_id,
        env_uri=loc.url_of("envs", f"{env_id}.json"),
        layers=tuple(done),
        bytes_sent=total[0],
        manifest_written=written,
        seconds=time.monotonic() - start,
    )
