"""S3 multipart upload with parts in flight in parallel, hashed in order, bounded memory."""

from __future__ import annotations

import contextlib
import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from ...errors import StoreError
from ...progress import BytesDone
from .location import StoreLocation

__all__ = ["supports_multipart", "upload_multipart", "IN_FLIGHT"]

IN_FLIGHT = 4  # parts uploading at once: memory is IN_FLIGHT x part size


def supports_multipart(loc: StoreLocation) -> bool:
    """s3fs exposes the raw S3 calls this needs; other object stores use streaming writes."""
    return loc.caps.s3 is not None


def upload_multipart(
    loc: StoreLocation,
    src: BinaryIO,
    final: str,
    part_size: int,
    chunk: int,
    progress: BytesDone | None,
    expect_hex: str | None,
) -> tuple[int, str]:
    """Upload *src* to *final*; the object exists only once every part is in and the sha256
    of what was read matches *expect_hex*. Any failure aborts the upload."""
    fs: Any = loc.fs
    s3: Any = loc.caps.s3
    bucket, key, _ = fs.split_path(final)
    upload_id = s3("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]
    digest = hashlib.sha256()
    total = 0
    parts: list[dict[str, Any]] = []

    def send(number: int, body: bytes) -> dict[str, Any]:
        out = s3("upload_part", Bucket=bucket, Key=key, UploadId=upload_id,
                         PartNumber=number, Body=body)
        if progress is not None:
            progress(len(body))
        return {"PartNumber": number, "ETag": out["ETag"]}

    try:
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="envship-part") as pool:
            pending: deque[Future[dict[str, Any]]] = deque()
            number = 0
            while True:
                body = bytearray()
                while len(body) < part_size:
                    piece = src.read(min(chunk, part_size - len(body)))
                    if not piece:
                        break
                    digest.update(piece)
                    body += piece
                if not body and number:
                    break
                number += 1
                total += len(body)
                pending.append(pool.submit(send, number, bytes(body)))
                if len(pending) >= IN_FLIGHT:
                    parts.append(pending.popleft().result())
                if len(body) < part_size:
                    break
            while pending:
                parts.append(pending.popleft().result())
        hexdigest = digest.hexdigest()
        if expect_hex is not None and hexdigest != expect_hex:
            raise StoreError(
                f"local blob changed while uploading to {loc.url}: sha256 {hexdigest}, "
                f"expected {expect_hex}; pack again"
            )
        s3("complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
                   MultipartUpload={"Parts": parts})
    except BaseException:
        with contextlib.suppress(Exception):
            s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    with contextlib.suppress(Exception):
        fs.invalidate_cache(final)
    return total, hexdigest
