"""Decompress a gzip stream in background threads, so reading, hashing and inflating overlap
with unpacking files (zlib and hashlib release the GIL; `tar xzf` gets the same from gzip).

One thread reads the compressed blob ahead of the inflater (up to 32 MB), so the blob's digest
is known as soon as its last byte arrives: a blob that is not what its manifest promised is
refused then, not after everything it inflates to has been written.
"""

from __future__ import annotations

import threading
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    import queue
    from typing import Any, Protocol

    class Readable(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...


__all__ = ["Gunzip", "TooLarge"]

_RAW_CHUNK = 256 << 10
_RAW_AHEAD = 128  # compressed chunks read ahead of the inflater (32 MB)
_OUT_CHUNK = 1 << 20  # at most this much inflated from one call: a bomb never sits in memory
_QUEUE = 16  # decompressed chunks in flight (a few MB)


class TooLarge(OSError):
    """The stream inflates to more than the limit it was given."""


class Gunzip:
    """A read-only file object over the decompressed bytes of *raw* (gzip, multi-member ok).

    The threads read *raw* to its end, so a hashing wrapper around it sees every byte; an error
    from *raw* (a digest mismatch at its end) is raised by the next :meth:`read`, ahead of the
    data still queued. More than *limit* decompressed bytes raise :class:`TooLarge`. Call
    :meth:`close` (always) to wait for the threads.
    """

    def __init__(self, raw: Readable, limit: int | None = None) -> None:
        import queue

        self._raw = raw
        self._limit = limit
        self._raw_queue: queue.Queue[bytes | None] = queue.Queue(_RAW_AHEAD)
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(_QUEUE)
        self._stop = threading.Event()
        self._error: BaseException | None = None  # from the reader: preempts queued data
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._reader = threading.Thread(target=self._read_raw, name="envship-read", daemon=True)
        self._thread = threading.Thread(target=self._run, name="envship-gunzip", daemon=True)
        self._reader.start()
        self._thread.start()

    def _put(self, q: queue.Queue[Any], item: object) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        import queue

        while not self._stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _read_raw(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._raw.read(_RAW_CHUNK)
                if not self._put(self._raw_queue, chunk or None) or not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._error = exc
            self._put(self._raw_queue, None)

    def _run(self) -> None:
        try:
            d = zlib.decompressobj(wbits=31)
            started = False
            total = 0
            while not self._stop.is_set():
                chunk = self._get(self._raw_queue)
                if chunk is None:
                    break
                while chunk:
                    out = d.decompress(chunk, _OUT_CHUNK)
                    started = True
                    total += len(out)
                    if self._limit is not None and total > self._limit:
                        raise TooLarge(f"inflates to more than {self._limit} bytes")
                    if out and not self._put(self._queue, out):
                        return
                    chunk = d.unconsumed_tail
                    if not chunk and d.eof:  # end of one gzip member: another may follow
                        chunk = d.unused_data
                        d = zlib.decompressobj(wbits=31)
                        started = bool(chunk)
            if self._error is None and started and not d.eof and not self._stop.is_set():
                raise EOFError("compressed data ended before the end-of-stream marker")
            self._put(self._queue, None)
        except BaseException as exc:  # handed to the reading thread
            self._put(self._queue, exc if not isinstance(exc, zlib.error) else OSError(
                f"bad gzip data: {exc}"))
            self._stop.set()  # the reader thread stops too

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts: list[bytes] = []
            while True:
                part = self.read(1 << 20)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        if self._error is not None:
            self._eof = True
            raise self._error
        while self._pos >= len(self._buf):
            if self._eof:
                return b""
            item = self._queue.get()
            if self._error is not None:
                self._eof = True
                raise self._error
            if item is None:
                self._eof = True
                return b""
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            self._buf, self._pos = item, 0
        end = self._pos + n
        data = self._buf[self._pos : end] if (self._pos or end < len(self._buf)) else self._buf
        self._pos = min(end, len(self._buf))
        return data

    def close(self) -> None:
        """Stop early if unpacking failed; wait for the threads either way."""
        if not self._eof:
            self._stop.set()
        self._reader.join()
        self._thread.join()
