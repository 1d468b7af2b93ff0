"""The deleting side of gc: bulk deletes bounded by the sweep's deadline, and the leftovers
of killed publishers (temp files, S3 multipart uploads)."""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import StoreError
from . import retry
from .fs import StoreLocation, mtime_of

__all__ = ["SweepOver", "abort_stale_multipart", "delete_paths", "still_old"]

log = logging.getLogger(__name__)


class SweepOver(StoreError):
    """The sweep's time limit passed: no more deletes may be sent."""


_BULK = 500  # keys per S3 DeleteObjects request (at most 1000)


def delete_paths(loc: StoreLocation, paths: list[str], policy: retry.RetryPolicy,
            deadline: float) -> None:
    """Delete *paths* (missing ones are fine); never sends a delete after *deadline*."""

    def guarded(fn: Any) -> Any:
        def attempt() -> Any:
            if time.monotonic() >= deadline:
                raise SweepOver("sweep time limit reached")
            return fn()

        return attempt

    if not paths:
        return
    if loc.protocol in ("s3", "s3a"):
        for i in range(0, len(paths), _BULK):
            batch = paths[i : i + _BULK]
            try:
                retry.call(guarded(lambda b=batch: loc.fs.rm(b)), "deleting blobs", loc, policy)
            except StoreError:
                raise
            except Exception as exc:
                raise retry.as_store_error(exc, "deleting blobs", loc) from None
        return

    def one(path: str) -> None:
        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                loc.fs.rm_file(path)

        try:
            retry.call(guarded(rm), f"deleting {path}", loc, policy)
        except StoreError:
            raise
        except Exception as exc:
            raise retry.as_store_error(exc, "deleting a file", loc) from None

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="envship-rm") as pool:
        list(pool.map(one, paths))


def still_old(loc: StoreLocation, path: str, cutoff: float) -> bool:
    """Re-check right before deleting: a blob re-uploaded meanwhile is young again."""
    with contextlib.suppress(Exception):
        loc.fs.invalidate_cache(path)
        stamp = mtime_of(loc.fs.info(path))
        return stamp is not None and stamp < cutoff
    return False


def abort_stale_multipart(loc: StoreLocation, cutoff: float, dry_run: bool) -> int:
    """S3: abort multipart uploads of blobs started before *cutoff* (killed publishers).

    They are invisible (never completed) but their parts cost storage until aborted.
    """
    call_s3 = getattr(loc.fs, "call_s3", None)
    if call_s3 is None or not loc.object_store:
        return 0
    bucket, _, prefix = loc.path("blobs", "sha256", "").partition("/")
    try:
        uploads = call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
    except Exception as exc:  # listing uploads may need a permission ship does not
        log.info("cannot list multipart uploads in %s: %s", loc.url, loc.scrub(str(exc)))
        return 0
    count = 0
    for upload in uploads.get("Uploads", []):
        started = mtime_of({"LastModified": upload.get("Initiated")})
        if started is None or started >= cutoff:
            continue
        count += 1
        if not dry_run:
            with contextlib.suppress(Exception):
                call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                        UploadId=upload["UploadId"])
    return count
