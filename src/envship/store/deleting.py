"""What killed publishers leave behind, for gc to clear: temp files of interrupted writes and
S3 multipart uploads never completed."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from ..node.formats import BLOBS, blob_key
from .io import Key, StoreIO, mtime_of

__all__ = ["abort_stale_multipart", "still_old"]

log = logging.getLogger(__name__)


def still_old(io: StoreIO, key: Key, cutoff: float) -> bool:
    """Re-check right before deleting: a file re-written meanwhile is young again."""
    with contextlib.suppress(Exception):
        found = io.info(key)
        stamp = None if found is None else mtime_of(found)
        return stamp is not None and stamp < cutoff
    return False


def abort_stale_multipart(io: StoreIO, cutoff: float, dry_run: bool,
                          leased: Iterable[str] = ()) -> int:
    """S3: abort multipart uploads of blobs started before *cutoff* (killed publishers), but
    never one of a blob a live publisher's lease names (*leased* digests): that upload is
    still going on, whatever the grace period.

    They are invisible (never completed) but their parts cost storage until aborted.
    """
    s3 = io.caps.s3
    if s3 is None:
        return 0
    bucket, _, prefix = io.path((*BLOBS, "")).partition("/")
    try:
        uploads = s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
    except Exception as exc:  # listing uploads may need a permission ship does not
        log.info("cannot list multipart uploads in %s: %s", io.url, io.location.scrub(str(exc)))
        return 0
    live = {io.path(blob_key(d)).partition("/")[2] for d in leased}
    count = 0
    for upload in uploads.get("Uploads", []):
        started = mtime_of({"LastModified": upload.get("Initiated")})
        if started is None or started >= cutoff or upload.get("Key") in live:
            continue
        count += 1
        if not dry_run:
            with contextlib.suppress(Exception):
                s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                   UploadId=upload["UploadId"])
    return count
