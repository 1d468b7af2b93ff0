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
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..packing.manifest import LayerRef, Manifest, canonical_json
from ..progress import Progress
from . import retry
from .claim import claim, refresh, release
from .exists import existing_blobs
from .fs import StoreLocation
from .protocol import Step, Timing, no_step
from .transfer import upload_file, write_bytes

__all__ = ["LayerUpload", "PublishResult", "Progress", "publish", "UPLOADS_ENV", "BlobUnavailable"]

log = logging.getLogger(__name__)

UPLOADS_ENV = "ENVSHIP_STORE_UPLOADS"
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
    waited: float = 0.0  # of which spent waiting for a concurrent gc's deletions to end

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
            "waited": round(self.waited, 3),
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
        size = upload_file(loc, local, path, layer.hex, tick, link=True)
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


def _check_blobs(manifest: Manifest, blobs: Mapping[str, Path | None]) -> None:
    for layer in manifest.layers:
        if layer.digest not in blobs:
            raise StoreError(
                f"no local file for the {layer.kind} layer {layer.digest}; pack again"
            )
        local = blobs[layer.digest]
        if local is not None and not Path(local).is_file():
            raise StoreError(f"layer blob {local} ({layer.kind}) does not exist; pack again")


class BlobUnavailable(StoreError):
    """A blob publish had no local copy of (the team build cache's) is missing from the store."""


def publish(
    loc: StoreLocation,
    manifest: Manifest,
    blobs: Mapping[str, Path | None],
    *,
    policy: retry.RetryPolicy,
    progress: Progress | None = None,
    provenance: bool = True,
    timing: Timing | None = None,
    step: Step = no_step,
) -> PublishResult:
    """Make *manifest* and its blobs available in the store; the manifest goes last.

    Under a lease (see :mod:`.claim`): a gc running at the same time cannot remove a blob
    this publish found present, nor the env it found already published.
    """
    start = time.monotonic()
    timing = timing or Timing()
    _check_blobs(manifest, blobs)
    env_id = manifest.env_id
    layers = {lay.digest: lay for lay in manifest.layers}
    manifest_path = loc.env_path(env_id)
    data = canonical_json(manifest.hashed_dict())
    workers = _workers()

    def manifest_present() -> bool:
        def check() -> bool:
            loc.fs.invalidate_cache(manifest_path)
            try:
                return bool(loc.fs.info(manifest_path).get("size") == len(data))
            except FileNotFoundError:
                return False

        return retry.call(check, f"checking manifest {env_id}", loc, policy)

    def blob_present(digest: str) -> bool:
        return _present(loc, layers[digest], policy)

    def blobs_present(digests: Sequence[str]) -> set[str]:  # one listing, or parallel HEADs
        return existing_blobs(loc, [layers[d] for d in digests], policy)

    lock = threading.Lock()
    total = [0]
    uploaded: set[str] = set()

    def send(digest: str) -> None:
        layer = layers[digest]
        local = blobs[digest]
        if local is None:  # taken from the team build cache: only the store had it
            raise BlobUnavailable(
                f"blob {digest} of the store's build cache is gone from {loc.url} (a gc "
                "removed it meanwhile); pack it here")
        size = _upload(loc, layer, Path(local), policy, progress)
        with lock:
            total[0] += size
            uploaded.add(digest)
        log.info("uploaded blob %s (%d bytes) to %s", digest, size, loc.url)

    try:
        got = claim(loc, env_id, list(layers), manifest_present, blob_present, policy, timing,
                    workers=workers, step=step, check_blobs=blobs_present)
    except Exception as exc:
        raise retry.as_store_error(exc, f"publishing env {env_id}", loc) from None
    written = False
    try:
        try:
            while True:
                missing = [d for d in layers if d not in got.present]
                if missing:
                    with ThreadPoolExecutor(max_workers=min(workers, len(missing))) as pool:
                        list(pool.map(send, missing))
                step("uploaded")
                # A publish slower than the lease's life takes a new one and looks again.
                fresh = refresh(loc, got, manifest_present, blob_present, policy, timing,
                                workers=workers, step=step, check_blobs=blobs_present)
                if fresh is got:
                    break
                got = fresh
        except Exception as exc:
            raise retry.as_store_error(exc, f"publishing env {env_id}", loc) from None

        # Only now, with every blob in place, does the env become visible.
        try:
            if not got.manifest_present:
                retry.call(lambda: write_bytes(loc, manifest_path, data),
                           f"writing manifest {env_id}", loc, policy)
                written = True
                step("manifest-written")
        except Exception as exc:
            raise retry.as_store_error(exc, f"writing manifest {env_id}", loc) from None
    except BaseException:
        release(loc, got, policy)
        raise

    def write_provenance() -> None:
        try:
            retry.call(
                lambda: write_bytes(loc, loc.env_path(env_id, ".provenance.json"),
                                    _provenance(env_id)),
                f"writing provenance of {env_id}", loc, policy,
            )
        except Exception as exc:
            raise retry.as_store_error(exc, f"writing provenance of {env_id}", loc) from None

    # The lease goes once the manifest is in place; provenance is written meanwhile.
    with ThreadPoolExecutor(max_workers=2) as pool:
        prov = pool.submit(write_provenance) if written and provenance else None
        pool.submit(release, loc, got, policy).result()
        if prov is not None:
            prov.result()
    step("released")
    return PublishResult(
        env_id=env_id,
        env_uri=loc.url_of("envs", f"{env_id}.json"),
        layers=tuple(
            LayerUpload(lay.kind, lay.digest, lay.size, lay.digest in uploaded)
            for lay in manifest.layers
        ),
        bytes_sent=total[0],
        manifest_written=written,
        seconds=time.monotonic() - start,
        waited=got.waited,
    )
