"""Streaming, all-or-nothing transfers between local files and a store location.

The raw mechanics (fsspec calls, foreign errors); :class:`.files.StoreIO` runs them under
retry and error mapping."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import uuid
from pathlib import Path
from typing import Any

from ...errors import StoreError
from ...progress import BytesDone
from .location import StoreLocation
from .multipart import supports_multipart, upload_multipart

__all__ = [
    "CHUNK",
    "TEMP_MARK",
    "upload_file",
    "write_bytes",
    "download_file",
    "hash_file",
    "temp_name",
]

CHUNK = 1 << 20  # 1 MiB: read/hash/write unit, so memory stays flat for any blob size
PART = 16 << 20  # object-store part size (a multiple of CHUNK, ≥ S3's 5 MiB minimum)
TEMP_MARK = ".tmp-"


def temp_name(path: str) -> str:
    """A hidden sibling of *path* (same directory, so rename is atomic)."""
    head, _, name = path.rpartition("/")
    return f"{head}/.{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}"


def _ensure_parent(loc: StoreLocation, path: str) -> None:
    if not loc.caps.object_store:
        loc.fs.makedirs(path.rpartition("/")[0], exist_ok=True)


def _abandon(f: Any) -> None:
    """Throw away a half-written file without committing it (no final object appears)."""
    with contextlib.suppress(Exception):
        f.discard()  # s3fs: aborts the multipart upload
    with contextlib.suppress(Exception):
        # fsspec's buffered files commit on close()/__del__; mark closed so nothing is sent.
        f.closed = True
    with contextlib.suppress(Exception):
        # local files: close the OS handle (fsspec's opener wraps it, LocalFiles hands it out)
        raw = getattr(f, "f", f if isinstance(f, io.BufferedIOBase) else None)
        if raw is not None:
            raw.close()


def _stream(src: Any, dst: Any, progress: BytesDone | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    total = 0
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            break
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
        total += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return total, digest.hexdigest()


def _fsync(f: Any) -> None:
    with contextlib.suppress(Exception):
        f.flush()
        os.fsync(f.fileno())


def _finish(loc: StoreLocation, tmp: str, final: str, size: int) -> None:
    """Rename *tmp* onto *final*; a concurrent writer that got there first is fine."""
    try:
        loc.fs.mv(tmp, final)
    except Exception:
        # Some filesystems (HDFS) refuse to rename onto an existing file: if an identical
        # copy is already in place, keep it.
        with contextlib.suppress(Exception):
            if loc.fs.info(final).get("size") == size:
                loc.fs.rm(tmp)
                return
        raise


def _remove(loc: StoreLocation, path: str) -> None:
    with contextlib.suppress(Exception):
        loc.fs.rm(path)


def upload_file(
    loc: StoreLocation,
    local: Path,
    final: str,
    expect_hex: str | None = None,
    progress: BytesDone | None = None,
    link: bool = False,
    expect_size: int | None = None,
) -> int:
    """Copy *local* to *final*; hash while streaming; never leave a partial *final*.

    Object stores get the bytes at the final key directly (a PUT or a completed multipart
    upload is atomic; an interrupted one is never visible; big S3 blobs upload several parts
    at once, see :mod:`.multipart`). Other filesystems get a hidden
    temporary sibling renamed into place. Returns the bytes sent.

    *link*: *local* is a blob of the build cache, hashed as it was written (its name is that
    hash) and immutable since: a local store on the same filesystem gets a hard link to it
    rather than a copy (as uv links installs from its cache), synced before it is renamed into
    place, so no bytes are written twice. It is not hashed again: the link is the very file
    the build cache holds, a later change to either name would change both, and every node
    checks a blob's sha256 as it unpacks it (`envship store verify` re-hashes a store). Its
    size must be *expect_size*, if given, before it is renamed into place.
    """
    _ensure_parent(loc, final)
    if link and loc.caps.local:
        linked = _link_in(loc, local, final, progress, expect_size)
        if linked is not None:
            return linked
    if supports_multipart(loc) and os.path.getsize(local) >= 2 * PART:
        with open(local, "rb") as src:
            size, _ = upload_multipart(loc, src, final, PART, CHUNK, progress, expect_hex)
        return size
    rename = loc.caps.atomic_rename
    target = temp_name(final) if rename else final
    with open(local, "rb") as src:
        kwargs: dict[str, Any] = {} if rename else {"block_size": PART}
        dst = loc.fs.open(target, "wb", **kwargs)
        try:
            size, hexdigest = _stream(src, dst, progress)
            _check_digest(local, hexdigest, expect_hex)
            if rename:
                _fsync(dst)
        except BaseException:
            _abandon(dst)
            if rename:
                _remove(loc, target)
            raise
        dst.close()
    if rename:
        try:
            _finish(loc, target, final, size)
        except BaseException:
            _remove(loc, target)
            raise
    return size


def _check_digest(local: Path, hexdigest: str, expect_hex: str | None) -> None:
    if expect_hex is not None and hexdigest != expect_hex:
        raise StoreError(f"local blob {local} changed while uploading: sha256 {hexdigest}, "
                         f"expected {expect_hex}; pack again")


def _link_in(loc: StoreLocation, local: Path, final: str, progress: BytesDone | None,
             expect_size: int | None) -> int | None:
    """Hard-link *local* in as *final* through a temp name (all or nothing), after syncing
    it; None where the filesystem cannot link (another device): copy instead."""
    tmp = temp_name(final)
    try:
        os.link(local, tmp)
    except OSError:
        return None
    try:
        # A link shares the blob's old mtime: a concurrent gc would take the temp name for
        # the leftover of a long-dead upload (older than its grace) and delete it mid-write.
        os.utime(tmp)
        with open(tmp, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            if expect_size is not None and size != expect_size:
                raise StoreError(f"local blob {local} is {size} bytes, expected {expect_size}: "
                                 "it changed after packing; pack again")
            os.fsync(src.fileno())  # cheap when the kernel already wrote the blob back
        if progress is not None:
            progress(size)
        _finish(loc, tmp, final, size)
        # rename() onto a hard link of the same file (a concurrent publisher linked it
        # first) does nothing and succeeds: the temp name is left to remove
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    except BaseException:
        _remove(loc, tmp)
        raise
    return size


def write_bytes(loc: StoreLocation, final: str, data: bytes) -> None:
    """Write a small file (manifest, tag) so readers see either nothing/old or all of it."""
    _ensure_parent(loc, final)
    if not loc.caps.atomic_rename:
        loc.fs.pipe_file(final, data)
        return
    tmp = temp_name(final)
    try:
        with loc.fs.open(tmp, "wb") as f:
            f.write(data)
            _fsync(f)
        _finish(loc, tmp, final, len(data))
    except BaseException:
        _remove(loc, tmp)
        raise


def download_file(
    loc: StoreLocation,
    path: str,
    dest: Path,
    expect_hex: str,
    what: str,
    progress: BytesDone | None = None,
) -> int:
    """Stream *path* to *dest*, verifying sha256; only a verified file ever reaches *dest*.
    *what* names it in messages (``blob sha256:…``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}{TEMP_MARK}{uuid.uuid4().hex[:12]}"
    loc.fs.invalidate_cache(path)  # the size fsspec reads with must be the current one
    try:
        with loc.fs.open(path, "rb", block_size=PART) as src, open(tmp, "wb") as out:
            size, hexdigest = _stream(src, out, progress)
        if hexdigest != expect_hex:
            raise StoreError(
                f"{what} in store {loc.url} is corrupt: its sha256 is {hexdigest}, expected "
                f"{expect_hex}; delete {loc.url_of(*loc.key_of(path))} and ship the env again"
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return size


def hash_file(loc: StoreLocation, path: str) -> str:
    """The sha256 (hex) of the store file *path*, streamed."""
    with loc.fs.open(path, "rb", block_size=PART) as src:
        return _stream(src, None, None)[1]
