"""The team build cache: ``fingerprints/<fp>.json`` maps a layer's content fingerprint to the
blob somebody already built from the same files, so a machine with an empty build cache
reuses the store's blobs instead of compiling, archiving and uploading them again.

Trust: a mapping is as trusted as whoever can write the store (they could as well replace a
tag). It is only a hint: a mapping whose blob is missing, or of the wrong size, is ignored, and
gc removes the mappings of the blobs it deletes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..node import formats
from ..packing.archive import Blob
from ..packing.manifest import LayerRef
from . import retry
from .exists import existing_blobs
from .fs import StoreLocation, read_bounded
from .transfer import write_bytes

__all__ = ["lookup", "record", "forget", "DISABLE_ENV", "enabled"]

log = logging.getLogger(__name__)

DISABLE_ENV = "ENVSHIP_NO_STORE_CACHE"  # "1": never reuse blobs through the store's mappings
READERS = 16
_MAX_ENTRY = 4096  # bytes: a mapping is a few dozen; anything bigger is not ours


def enabled(flag: bool = True) -> bool:
    """*flag* (``--no-store-cache`` clears it) unless ``ENVSHIP_NO_STORE_CACHE`` is set."""
    return flag and os.environ.get(DISABLE_ENV, "").strip().lower() in ("", "0", "false", "no")


def _path(loc: StoreLocation, fingerprint: str) -> str:
    return loc.path(*formats.fingerprint_key(fingerprint))


def _parse(data: bytes) -> Blob | None:
    if len(data) > _MAX_ENTRY:
        return None
    try:
        obj = json.loads(data)
        blob = Blob(obj["digest"], obj["size"], obj["files"], None, obj["unpacked"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    counts = (blob.size, blob.files, blob.unpacked)
    if not formats.is_digest(blob.digest) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts
    ):
        return None
    return blob


def lookup(
    loc: StoreLocation, fingerprints: Sequence[str], policy: retry.RetryPolicy
) -> dict[str, Blob]:
    """The *fingerprints* the store maps to a blob it still holds (right size); their blobs.
    Failures only cost the reuse: they are logged, never raised."""

    def read(fp: str) -> Blob | None:
        path = _path(loc, fp)
        try:
            data: bytes = retry.call(lambda: read_bounded(loc, path, "a build cache entry"),
                                     "reading build cache entry", loc, policy)
        except Exception as exc:  # missing (the usual case) or unreadable: build it here
            if not isinstance(exc, FileNotFoundError):
                log.info("store build cache entry %s unreadable: %s", fp[:16],
                         loc.scrub(str(exc)))
            return None
        blob = _parse(data)
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
        present = existing_blobs(loc, refs, policy)
    except Exception as exc:
        log.info("cannot check the store build cache's blobs: %s", loc.scrub(str(exc)))
        return {}
    return {fp: b for fp, b in mapped.items() if b.digest in present}


def record(loc: StoreLocation, mappings: Mapping[str, Blob], policy: retry.RetryPolicy) -> int:
    """Write ``fingerprints/<fp>.json`` for each mapping (after the blobs are published);
    returns how many were written. Failures are logged: the env is shipped anyway."""

    def write(item: tuple[str, Blob]) -> bool:
        fp, blob = item
        data = formats.canonical_json({"digest": blob.digest, "size": blob.size,
                                       "files": blob.files, "unpacked": blob.unpacked})
        try:
            retry.call(lambda: write_bytes(loc, _path(loc, fp), data),
                       "writing build cache entry", loc, policy)
        except Exception as exc:
            log.warning("cannot write the store's build cache entry %s: %s", fp[:16],
                        loc.scrub(str(exc)))
            return False
        return True

    if not mappings:
        return 0
    with ThreadPoolExecutor(max_workers=min(READERS, len(mappings)),
                            thread_name_prefix="envship-fp") as pool:
        return sum(pool.map(write, mappings.items()))


def forget(loc: StoreLocation, digests: set[str], policy: retry.RetryPolicy) -> int:
    """Remove the mappings to *digests* (blobs a gc deleted); returns how many went."""
    folder = loc.path(*formats.FINGERPRINTS)
    try:
        entries = retry.call(lambda: loc.ls(folder, detail=False), "listing build cache", loc,
                             policy)
    except FileNotFoundError:
        return 0
    paths = [str(e).rstrip("/") for e in entries if str(e).endswith(".json")]

    def check(path: str) -> bool:
        try:
            blob = _parse(read_bounded(loc, path, "a build cache entry"))
            if blob is None or blob.digest in digests:
                loc.fs.rm_file(path)
                return True
        except FileNotFoundError:
            pass
        except Exception as exc:
            log.warning("cannot clean build cache entry %s: %s", path, loc.scrub(str(exc)))
        return False

    if not paths:
        return 0
    with ThreadPoolExecutor(max_workers=min(READERS, len(paths))) as pool:
        return sum(pool.map(check, paths))
