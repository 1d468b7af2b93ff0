"""The team build cache: ``fingerprints/<fp>.json`` maps a layer's content fingerprint to the
blob somebody already built from the same files, so a machine with an empty build cache
reuses the store's blobs instead of compiling, archiving and uploading them again.

Trust: a mapping is as trusted as whoever can write the store (they could as well replace a
tag). It is only a hint: a mapping whose blob is missing, or of the wrong size, is ignored, and
gc removes the mappings of the blobs it deletes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..errors import ManifestError, StoreError
from ..node import formats
from ..packing.archive import Blob
from ..packing.manifest import LayerRef
from .exists import existing_blobs
from .io import NotFound, Refused, StoreIO

__all__ = ["lookup", "record", "forget", "DISABLE_ENV", "enabled"]

log = logging.getLogger(__name__)

DISABLE_ENV = "ENVSHIP_NO_STORE_CACHE"  # "1": never reuse blobs through the store's mappings
READERS = 16
_MAX_ENTRY = 4096  # bytes: a mapping is a few dozen; anything bigger is not ours


def enabled(flag: bool = True) -> bool:
    """*flag* (``--no-store-cache`` clears it) unless ``ENVSHIP_NO_STORE_CACHE`` is set."""
    return flag and os.environ.get(DISABLE_ENV, "").strip().lower() in ("", "0", "false", "no")


def _read(io: StoreIO, fp: str) -> Blob | None:
    """The mapping of *fp*; None if it is not an envship mapping. NotFound if missing."""
    key = formats.fingerprint_key(fp)
    try:
        obj = formats.parse_document(io.read(key, "build cache entry", limit=_MAX_ENTRY),
                                     io.url_of(key), "build cache entry")
        blob = Blob(obj["digest"], obj["size"], obj["files"], None, obj["unpacked"])
    except (Refused, ManifestError, KeyError, TypeError):
        return None
    counts = (blob.size, blob.files, blob.unpacked)
    if not formats.is_digest(blob.digest) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts
    ):
        return None
    return blob


def lookup(io: StoreIO, fingerprints: Sequence[str]) -> dict[str, Blob]:
    """The *fingerprints* the store maps to a blob it still holds (right size); their blobs.
    Failures only cost the reuse: they are logged, never raised."""

    def read(fp: str) -> Blob | None:
        try:
            blob = _read(io, fp)
        except NotFound:  # the usual case: build it here
            return None
        except StoreError as exc:
            log.info("store build cache entry %s unreadable: %s", fp[:16], exc)
            return None
        if blob is None:
            log.warning("store build cache entry %s is not an envship mapping; ignored", fp[:16])
        return blob

    if not fingerprints:
        return {}
    with ThreadPoolExecutor(max_workers=min(READERS, len(fingerprints)),
                            thread_name_prefix="envship-fp") as pool:
        mapped = {fp: b for fp, b in zip(fingerprints, pool.map(read, fingerprints), strict=True)
                  if b is not None}
    if not mapped:
        return {}
    refs = [LayerRef("dist", b.digest, b.size, b.files) for b in mapped.values()]
    try:
        present = existing_blobs(io, refs)
    except StoreError as exc:
        log.info("cannot check the store build cache's blobs: %s", exc)
        return {}
    return {fp: b for fp, b in mapped.items() if b.digest in present}


def record(io: StoreIO, mappings: Mapping[str, Blob]) -> int:
    """Write the mapping of each fingerprint (after the blobs are published); returns how
    many were written. Failures are logged: the env is shipped anyway."""

    def write(item: tuple[str, Blob]) -> bool:
        fp, blob = item
        data = formats.canonical_json({"digest": blob.digest, "size": blob.size,
                                       "files": blob.files, "unpacked": blob.unpacked})
        try:
            io.write(formats.fingerprint_key(fp), data, "build cache entry")
        except StoreError as exc:
            log.warning("cannot write the store's build cache entry %s: %s", fp[:16], exc)
            return False
        return True

    if not mappings:
        return 0
    with ThreadPoolExecutor(max_workers=min(READERS, len(mappings)),
                            thread_name_prefix="envship-fp") as pool:
        return sum(pool.map(write, mappings.items()))


def forget(io: StoreIO, digests: set[str]) -> int:
    """Remove the mappings to *digests* (blobs a gc deleted), and any that is not a mapping;
    returns how many went."""
    fps = [e.name[: -len(".json")] for e in io.entries(formats.FINGERPRINTS)
           if e.name.endswith(".json") and not e.name.startswith(".")]

    def check(fp: str) -> bool:
        try:
            blob = _read(io, fp)
            if blob is None or blob.digest in digests:
                io.remove(formats.fingerprint_key(fp), "build cache entry")
                return True
        except NotFound:
            pass
        except StoreError as exc:
            log.warning("cannot clean build cache entry %s: %s", fp[:16], exc)
        return False

    if not fps:
        return 0
    with ThreadPoolExecutor(max_workers=min(READERS, len(fps))) as pool:
        return sum(pool.map(check, fps))
