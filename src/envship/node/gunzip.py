"""Decompress a gzip stream in a background thread, so reading, hashing and inflating overlap
with unpacking files (zlib and hashlib release the GIL; `tar xzf` gets the same from gzip)."""

from __future__ import annotations

import threading
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Readable(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...


__all__ = ["Gunzip"]

_RAW_CHUNK = 256 << 10
_QUEUE = 16  # decompressed chunks in flight (a few MB)


class Gunzip:
    """A read-only file object over the decompressed bytes of *raw* (gzip, multi-member ok).

    The thread reads *raw* to its end, so a hashing wrapper around it sees every byte; call
    :meth:`close` (always) to wait for it.
    """

    def __init__(self, raw: Readable) -> None:
        import queue

        self._raw = raw
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(_QUEUE)
        self._stop = threading.Event()
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="envship-gunzip", daemon=True)
        self._thread.start()

    def _put(self, item: bytes | BaseException | None) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            d = zlib.decompressobj(wbits=31)
            started = False
            while not self._stop.is_set():
                chunk = self._raw.read(_RAW_CHUNK)
                if not chunk:
                    break
                while chunk:
                    out = d.decompress(chunk)
                    started = True
                    if out and not self._put(out):
                        return
                    chunk = b""
                    if d.eof:  # end of one gzip member: another may follow
                        chunk = d.unused_data
                        d = zlib.decompressobj(wbits=31)
                        started = bool(chunk)
            if started and not d.eof and not self._stop.is_set():
                raise EOFError("compressed data ended before the end-of-stream marker")
            self._put(None)
        except BaseException as exc:  # handed to the reading thread
            self._put(exc if not isinstance(exc, zlib.error) else OSError(f"bad gzip data: {exc}"))

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts: list[bytes] = []
            while True:
                part = self.read(1 << 20)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        while self._pos >= len(self._buf):
            if self._eof:
                return b""
            item = self._queue.get()
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
        """Stop early if unpacking failed; wait for the thread either way."""
        if not self._eof:
            self._stop.set()
        self._thread.join()
