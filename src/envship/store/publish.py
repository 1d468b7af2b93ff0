"""Publish an env: upload missing blobs in parallel, verify them, then write the manifest."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import StoreError
from ..node.formats import env_key, provenance_key
from ..packing.manifest import LayerRef, Manifest, canonical_json
from ..progress import Progress
from .exists import blob_present, existing_blobs
from .io import StoreIO
from .io.location import blob
from .protocol import Step, Timing, no_step
from .protocol.claim import claim, refresh, release

__all__ = ["LayerUpload", "PublishResult", "Progress", "publish", "UPLOADS_ENV",
           "BlobUnavailable"]

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


def _upload(io: StoreIO, layer: LayerRef, local: Path, progress: Progress | None) -> int:
    """Send one blob, then check the size the store reports."""
    key = blob(layer.digest)

    def tick(n: int) -> None:
        if progress is not None:
            progress(layer.digest, n, layer.size)

    size = io.upload(local, key, layer.hex, tick, link=True, what=f"blob {layer.digest}",
                     expect_size=layer.size)
    if size != layer.size:
        raise StoreError(
            f"local blob {local} is {size} bytes but the manifest says {layer.size}; pack again"
        )
    remote = io.size(key, f"blob {layer.digest}")
    if remote != size:
        raise StoreError(
            f"blob {layer.digest} in store {io.url} is {remote} bytes after upload, "
            f"expected {size}; the store may be out of space or failing"
        )
    return size


def _provenance(env_id: str) -> bytes:
    import getpass  # with socket: only for the provenance file (`pack -o` writes none)
    import socket

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
    io: StoreIO,
    manifest: Manifest,
    blobs: Mapping[str, Path | None],
    *,
    progress: Progress | None = None,
    provenance: bool = True,
    timing: Timing | None = None,
    step: Step = no_step,
) -> PublishResult:
    """Make *manifest* and its blobs available in the store; the manifest goes last.

    Under a lease (see :mod:`.protocol.claim`): a gc running at the same time cannot remove a
    blob this publish found present, nor the env it found already published.
    """
    start = time.monotonic()
    timing = timing or Timing()
    _check_blobs(manifest, blobs)
    env_id = manifest.env_id
    layers = {lay.digest: lay for lay in manifest.layers}
    data = canonical_json(manifest.hashed_dict())
    workers = _workers()

    def manifest_present() -> bool:
        return io.size(env_key(env_id), f"manifest {env_id}") == len(data)

    def blob_there(digest: str) -> bool:
        return blob_present(io, digest, layers[digest].size)

    def blobs_there(digests: Sequence[str]) -> set[str]:  # one listing, or parallel HEADs
        return existing_blobs(io, [layers[d] for d in digests])

    lock = threading.Lock()
    total = [0]
    uploaded: set[str] = set()

    def send(digest: str) -> None:
        local = blobs[digest]
        if local is None:  # taken from the team build cache: only the store had it
            raise BlobUnavailable(
                f"blob {digest} of the store's build cache is gone from {io.url} (a gc "
                "removed it meanwhile); pack it here")
        size = _upload(io, layers[digest], Path(local), progress)
        with lock:
            total[0] += size
            uploaded.add(digest)
        log.info("uploaded blob %s (%d bytes) to %s", digest, size, io.url)

    got = claim(io, env_id, list(layers), manifest_present, blob_there, timing,
                workers=workers, step=step, check_blobs=blobs_there)
    written = False
    try:
        while True:
            missing = [d for d in layers if d not in got.present]
            if missing:
                with ThreadPoolExecutor(max_workers=min(workers, len(missing))) as pool:
                    list(pool.map(send, missing))
            step("uploaded")
            # A publish slower than the lease's life takes a new one and looks again.
            fresh = refresh(io, got, manifest_present, blob_there, timing, workers=workers,
                            step=step, check_blobs=blobs_there)
            if fresh is got:
                break
            got = fresh
        # Only now, with every blob in place, does the env become visible.
        if not got.manifest_present:
            io.write(env_key(env_id), data, f"manifest {env_id}")
            written = True
            step("manifest-written")
    except BaseException:
        release(io, got)
        raise

    def write_provenance() -> None:
        io.write(provenance_key(env_id), _provenance(env_id), f"provenance of {env_id}")

    # The lease goes once the manifest is in place; provenance is written meanwhile.
    with ThreadPoolExecutor(max_workers=2) as pool:
        prov = pool.submit(write_provenance) if written and provenance else None
        pool.submit(release, io, got).result()
        if prov is not None:
            prov.result()
    step("released")
    return PublishResult(
        env_id=env_id,
        env_uri=io.url_of(env_key(env_id)),
        layers=tuple(
            LayerUpload(lay.kind, lay.digest, lay.size, lay.digest in uploaded)
            for lay in manifest.layers
        ),
        bytes_sent=total[0],
        manifest_written=written,
        seconds=time.monotonic() - start,
        waited=got.waited,
    )
