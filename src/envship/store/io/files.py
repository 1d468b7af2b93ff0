"""`StoreIO`: a store location bound to its retry policy, offering the few primitives every
operation is written against (as fsspec's AbstractFileSystem derives the rest from a few).

Each primitive runs under retry and error mapping exactly once, and raises only StoreError
(NotFound for a missing object that was read). Paths are layout keys (tuples from
:mod:`envship.node.formats`); listings are always read fresh, never from fsspec's cache.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ...errors import StoreError
from ...node.formats import MAX_DOCUMENT_BYTES
from ...progress import BytesDone
from . import retry, transfer
from .capabilities import SIGNERS, Capabilities
from .errors import NotFound, Refused, as_store_error
from .location import Key, StoreLocation

__all__ = ["StoreIO", "Entry", "mtime_of"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_BULK = 500  # keys per S3 DeleteObjects request (at most 1000)
_REMOVERS = 8  # single deletes in flight elsewhere
_TEMP_TRIES = 3  # an upload whose temp name a concurrent gc removed starts over this often


@dataclass(frozen=True)
class Entry:
    """One listed file (or folder) of a store folder."""

    key: Key  # under the store root: (*folder, name)
    size: int | None
    mtime: float | None  # POSIX seconds, as the store reports it
    is_dir: bool = False

    @property
    def name(self) -> str:
        return self.key[-1]


class StoreIO:
    """The primitives of one store: names/entries, info/size/exists, read, write, remove,
    upload/download; retry and error mapping under every one."""

    def __init__(self, location: StoreLocation, policy: retry.RetryPolicy) -> None:
        self.location = location
        self.policy = policy

    def __repr__(self) -> str:
        return f"StoreIO({self.url!r})"

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def fs(self) -> Any:
        return self.location.fs

    @property
    def caps(self) -> Capabilities:
        return self.location.caps

    def path(self, key: Key) -> str:
        return self.location.path(*key)

    def url_of(self, key: Key) -> str:
        return self.location.url_of(*key)

    def call(self, fn: Callable[[], T], what: str, *, before: float | None = None) -> T:
        """*fn* (raw fsspec calls) under retry, its foreign errors mapped to StoreError: for
        the steps built of several calls (an upload and its checks)."""
        try:
            return retry.call(fn, what, self.location, self.policy, before)
        except StoreError:
            raise
        except Exception as exc:
            raise as_store_error(exc, what, self.location) from None

    # -- listing ------------------------------------------------------------------
    def entries(self, folder: Key) -> list[Entry]:
        """What *folder* holds now; a missing folder is empty. On S3, one request per 1000
        keys (s3fs's `ls` spends a second one on an empty folder, the usual case of
        `leases/` and `sweeps/`)."""

        def ls() -> list[Entry]:
            if self.caps.s3 is not None:
                return self._s3_entries(folder)
            return self._ls(folder) or []

        return self.call(ls, f"listing {'/'.join(folder)}/")

    def listing(self, folder: Key) -> list[Entry] | None:
        """Like :meth:`entries`, but None when *folder* does not exist (or is a file)."""
        return self.call(lambda: self._ls(folder), f"listing {'/'.join(folder) or 'the root'}")

    def names(self, folder: Key) -> list[str]:
        return sorted(e.name for e in self.entries(folder))

    def _ls(self, folder: Key) -> list[Entry] | None:
        path = self.path(folder)
        # fsspec caches listings per filesystem instance, and other processes change the
        # store: a gc, a publish or a lease check that read a cached listing acts on the past.
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return [self._entry(folder, e) for e in found]

    @staticmethod
    def _entry(folder: Key, info: Mapping[str, Any]) -> Entry:
        name = str(info["name"]).rstrip("/").rpartition("/")[2]
        size = info.get("size")
        return Entry((*folder, name), int(size) if size is not None else None, mtime_of(info),
                     info.get("type") == "directory")

    def _s3_entries(self, folder: Key) -> list[Entry]:
        s3: Any = self.caps.s3
        bucket, _, prefix = self.path(folder).partition("/")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        out: list[Entry] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        while True:
            try:
                page = s3("list_objects_v2", **kwargs)
            except FileNotFoundError:
                return []  # no bucket
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix):]
                if name:
                    out.append(Entry((*folder, name), obj.get("Size", 0),
                                     mtime_of({"LastModified": obj.get("LastModified")})))
            for sub in page.get("CommonPrefixes", []):
                name = sub["Prefix"][len(prefix):].rstrip("/")
                if name:
                    out.append(Entry((*folder, name), 0, None, True))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return out
            kwargs["ContinuationToken"] = token

    # -- one object ---------------------------------------------------------------
    def info(self, key: Key, what: str = "") -> dict[str, Any] | None:
        """fsspec's `info` of *key* as the store is now, or None if it is not there."""
        path = self.path(key)

        def look() -> dict[str, Any] | None:
            self.fs.invalidate_cache(path)  # a cached listing may predate another's gc
            try:
                return dict(self.fs.info(path))
            except FileNotFoundError:
                return None

        return self.call(look, f"checking {what or '/'.join(key)}")

    def size(self, key: Key, what: str = "") -> int | None:
        """The size of *key*, or None if it is not there."""
        found = self.info(key, what)
        return None if found is None else int(found.get("size") or 0)

    def exists(self, key: Key, what: str = "") -> bool:
        return self.info(key, what) is not None

    def read(self, key: Key, what: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
        """The bytes of a small store file, never more than *limit* (more is an error, as is
        anything but a regular file where the backend can tell); NotFound if it is missing."""
        path = self.path(key)

        def get() -> bytes:
            try:
                if self.caps.local:
                    data = _read_local(path, limit + 1)
                else:
                    data = _read_range(self.fs, path, limit + 1)
            except FileNotFoundError:
                raise NotFound(f"{what} not found in store {self.url}") from None
            except _Oversized as big:
                raise Refused(f"{what} in store {self.url} is {big.size} bytes, larger than "
                              f"{limit} bytes; not an envship file") from None
            if data is None:
                raise Refused(f"{what} in store {self.url} is not a regular file")
            if len(data) > limit:
                raise Refused(f"{what} in store {self.url} is larger than {limit} bytes; "
                                 "not an envship file")
            return data

        return self.call(get, f"reading {what}")

    def write(self, key: Key, data: bytes, what: str) -> None:
        """Write a small file so readers see either nothing (or the old one) or all of it:
        temp + rename where renames are atomic, else one PUT."""
        path = self.path(key)
        put = self._again_if_temp_vanished(
            lambda: transfer.write_bytes(self.location, path, data), what)
        self.call(put, f"writing {what}")

    def _again_if_temp_vanished(self, write: Callable[[], T], what: str) -> Callable[[], T]:
        """*write* (through a temp name), started over when its temp name vanished: a gc
        run with a short grace takes a temp file for an interrupted write's leftover."""
        if not self.caps.atomic_rename:
            return write

        def again() -> T:
            for _ in range(_TEMP_TRIES - 1):
                try:
                    return write()
                except FileNotFoundError:
                    log.info("temp copy of %s in %s vanished; writing it again", what, self.url)
            return write()

        return again

    def remove(self, key: Key, what: str = "a file", *, before: float | None = None) -> None:
        """Delete one file; already gone is fine."""
        path = self.path(key)

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

        self.call(rm, f"deleting {what}", before=before)

    def remove_many(self, keys: Sequence[Key], what: str, *, before: float | None = None
                    ) -> None:
        """Delete *keys* (missing ones are fine): batched where the backend can (S3
        DeleteObjects), else a few at once. No request is sent after *before* (monotonic)."""
        if self.caps.s3 is not None:
            for i in range(0, len(keys), _BULK):
                paths = [self.path(k) for k in keys[i : i + _BULK]]
                self.call(partial(self.fs.rm, paths), f"deleting {what}", before=before)
            return
        if keys:
            with ThreadPoolExecutor(min(_REMOVERS, len(keys)), "envship-rm") as pool:
                list(pool.map(lambda k: self.remove(k, what, before=before), keys))

    def sign(self, key: Key, expires: int) -> str:
        """A presigned HTTP(S) URL of *key*, valid *expires* seconds; a clear error for
        stores that cannot sign."""

        def signed() -> object:
            try:
                return self.fs.sign(self.path(key), expiration=expires)
            except NotImplementedError:
                raise StoreError(
                    f"store {self.url} ({self.caps.protocol}://) cannot make presigned URLs; "
                    "use an object store (s3://, gs://, az://), or give nodes the env URI and "
                    "access to the store"
                ) from None
            except (AttributeError, ValueError, TypeError) as exc:  # credentials cannot sign
                how = SIGNERS.get(self.caps.protocol, "use credentials that can sign URLs")
                reason = self.location.scrub(str(exc).splitlines()[0][:160]) if str(exc) else ""
                raise StoreError(
                    f"store {self.url} cannot make presigned URLs with the credentials in use "
                    f"({type(exc).__name__}: {reason}); {how}"
                ) from None

        url = self.call(signed, f"signing {'/'.join(key)}")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise StoreError(f"store {self.url} returned no HTTP(S) presigned URL for "
                             f"{self.url_of(key)}")
        return url

    # -- streams ------------------------------------------------------------------
    def upload(self, local: Path, key: Key, expect_hex: str | None = None,
               progress: BytesDone | None = None, *, link: bool = False, what: str = "",
               expect_size: int | None = None) -> int:
        """Copy *local* to *key*, hashing while streaming (see :func:`.transfer.upload_file`);
        a retried attempt takes back the bytes it had reported. Returns the bytes sent."""
        path = self.path(key)
        sent = [0]

        def tick(n: int) -> None:
            sent[0] += n
            if progress is not None:
                progress(n)

        def attempt() -> int:
            if sent[0] and progress is not None:
                progress(-sent[0])  # restart: undo counted bytes
            sent[0] = 0
            return transfer.upload_file(self.location, local, path, expect_hex, tick, link,
                                        expect_size)

        send = self._again_if_temp_vanished(attempt, what or path)
        return self.call(send, f"uploading {what or '/'.join(key)}")

    def download(self, key: Key, dest: Path, expect_hex: str, what: str,
                 progress: BytesDone | None = None) -> int:
        """Stream *key* to *dest*, checking its sha256; NotFound if it is missing."""
        path = self.path(key)

        def attempt() -> int:
            try:
                return transfer.download_file(self.location, path, dest, expect_hex, what,
                                              progress)
            except FileNotFoundError:
                raise NotFound(f"{what} not found in store {self.url}") from None

        return self.call(attempt, f"downloading {what}")

    def digest(self, key: Key, what: str) -> str | None:
        """The sha256 (hex) of *key*'s bytes, streamed; None if it is missing."""
        path = self.path(key)

        def attempt() -> str | None:
            try:
                return transfer.hash_file(self.location, path)
            except FileNotFoundError:
                return None

        return self.call(attempt, f"re-hashing {what}")


def _read_local(path: str, most: int) -> bytes | None:
    """At most *most* bytes of a local regular file; None for anything else (a FIFO would
    block a reader forever, a device never end)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    if st.st_size >= most:  # a 20 GB sparse file: refused by its size, not after reading
        os.close(fd)
        raise _Oversized(st.st_size)
    with os.fdopen(fd, "rb") as f:
        return f.read(most)


class _Oversized(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _read_range(fs: Any, path: str, most: int) -> bytes:
    """At most *most* bytes of *path*: one ranged GET on object stores."""
    try:
        data: bytes = fs.cat_file(path, start=0, end=most)
    except OSError as exc:
        # S3 answers a range over an empty object with 416 (InvalidRange: "not satisfiable")
        if not re.search(r"InvalidRange|416|range is not satisfiable", str(exc)):
            raise
        data = fs.cat_file(path)
    return data


def mtime_of(info: Mapping[str, Any]) -> float | None:
    """Modification time (POSIX seconds) from an fsspec `info`/`ls` entry of any backend."""
    # s3fs: LastModified; gcsfs: updated/mtime; adlfs: last_modified; WebHDFS: modificationTime
    for key in ("mtime", "LastModified", "last_modified", "updated", "modificationTime",
                "created", "creation_time", "mtime_ns"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_dt.timezone.utc)
            return value.timestamp()
        if isinstance(value, (int, float)):
            if key == "modificationTime":
                return float(value) / 1000.0  # WebHDFS: milliseconds
            if key == "mtime_ns":
                return float(value) / 1e9
            return float(value)
        if isinstance(value, str):
            try:
                parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=_dt.timezone.utc)
            return parsed.timestamp()
    return None
