"""Read bytes from a URL: local paths, file://, http(s):// (urllib), anything fsspec opens."""

from __future__ import annotations

import hashlib
import os
import socket
import time

from .errors import NodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "open_url",
    "read_url",
    "safe_url",
    "local_path",
    "HashingReader",
    "FetchInterrupted",
    "is_local",
    "env_int",
    "parse_size",
    "redact_text",
]

_RETRIES = 3
# fsspec backends a node may lack: scheme -> (package, envship extra bringing it)
_BACKENDS = {
    "s3": ("s3fs", "envship[s3]"), "s3a": ("s3fs", "envship[s3]"),
    "gs": ("gcsfs", "envship[gcs]"), "gcs": ("gcsfs", "envship[gcs]"),
    "az": ("adlfs", "envship[azure]"), "abfs": ("adlfs", "envship[azure]"),
    "abfss": ("adlfs", "envship[azure]"),
}


def safe_url(url: str) -> str:
    """*url* without query string or user info: presigned signatures never reach logs or errors."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    host, sep, path = rest.partition("/")
    host = host.rsplit("@", 1)[-1]
    return f"{scheme}://{host}{sep}{path}"


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    if url.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise NodeError(f"{url}: file:// URLs must point to this host")
        return unquote(parts.path)
    return os.path.expanduser(url)  # '~/store/envs/<id>.json', quoted so the shell left it


def open_url(url: str) -> BinaryIO:
    """Open *url* for streaming reads; transient HTTP errors are retried with backoff."""
    if is_local(url):
        path = local_path(url)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO: no hang
        except FileNotFoundError:
            raise NodeError(f"{path}: not found; check the env URI and the store") from None
        except OSError as exc:
            raise NodeError(f"{path}: cannot read ({exc.strerror})") from None
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NodeError(f"{path}: not a regular file (a FIFO, device or directory); not "
                            "an envship file")
        return os.fdopen(fd, "rb")
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        return _open_http(url)
    try:
        import fsspec
    except ImportError:
        raise NodeError(
            f"{safe_url(url)}: reading {scheme}:// URLs needs fsspec (and its {scheme} "
            "backend) on this node; install it, or use a presigned env "
            "(`envship presign`) whose layers are plain HTTPS URLs"
        ) from None
    try:
        return fsspec.open(url, "rb").open()  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise NodeError(f"{safe_url(url)}: not found; check the env URI and the store") from None
    except ImportError:
        backend, extra = _BACKENDS.get(scheme, (f"the fsspec backend for {scheme}://", ""))
        how = f"`pip install {backend}`" + (f" (or `pip install '{extra}'`)" if extra else "")
        raise NodeError(
            f"{safe_url(url)}: reading {scheme}:// URLs needs {backend} on this node: {how}; "
            "or use a presigned env (`envship presign`) whose layers are plain HTTPS URLs"
        ) from None
    except Exception as exc:  # botocore, aiohttp, gcsfs...: one line, whatever the backend
        raise NodeError(
            f"{safe_url(url)}: cannot read it ({type(exc).__name__}: {redact_text(str(exc))}); "
            "check the URL, the endpoint, the network and this node's credentials for "
            f"{scheme}://, or use a presigned env (`envship presign`)"
        ) from None


def redact_text(text: str, limit: int = 200) -> str:
    """*text* (a foreign error message) on one line, without URL user info or query strings."""
    import re

    text = re.sub(r"(\w://)[^/@\s\"']*@", r"\1", " ".join(text.split()))
    text = re.sub(r"(\w://[^\s\"'?]*)\?[^\s\"']*", r"\1", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open_http(url: str) -> BinaryIO:
    import urllib.error
    import urllib.request

    try:
        req = urllib.request.Request(url, headers={"User-Agent": "envship-node"})
    except ValueError as exc:  # "http://[::1/…"
        raise NodeError(f"{safe_url(url)}: not a valid URL ({exc})") from None
    delay = 0.5
    for attempt in range(_RETRIES):
        last = attempt == _RETRIES - 1
        try:
            return urllib.request.urlopen(req, timeout=60)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NodeError(f"{safe_url(url)}: not found (HTTP 404)") from None
            if exc.code in (401, 403):
                raise NodeError(
                    f"{safe_url(url)}: access denied (HTTP {exc.code}); a presigned URL may "
                    "have expired: presign the env again"
                ) from None
            if exc.code < 500 or last:
                raise NodeError(f"{safe_url(url)}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            # Nothing listens there, or no such host: retrying only delays the error.
            if last or isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                raise NodeError(f"{safe_url(url)}: cannot connect ({reason})") from None
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def read_url(url: str, limit: int = 64 << 20) -> bytes:
    """The whole (small) object at *url*: manifests and tags."""
    with open_url(url) as f:
        try:
            size = os.fstat(f.fileno()).st_size  # a local file: refuse a huge one unread
        except (AttributeError, OSError, ValueError):
            size = 0
        if size > limit:
            raise NodeError(f"{safe_url(url)}: {size} bytes, larger than {limit}; not an envship "
                            "file")
        try:
            data = f.read(limit + 1)
        except NodeError:
            raise
        except Exception as exc:  # a connection lost while reading, from any backend
            raise NodeError(f"{safe_url(url)}: cannot read it ({type(exc).__name__}: "
                            f"{redact_text(str(exc))})") from None
    if len(data) > limit:
        raise NodeError(f"{safe_url(url)}: larger than {limit} bytes; not a manifest")
    return bytes(data)


class FetchInterrupted(NodeError):
    """A download broke off midway (connection reset, timeout): worth another attempt."""


class HashingReader:
    """A read-only stream that sha256-hashes and counts what passes through it."""

    def __init__(
        self, raw: BinaryIO, limit: int, label: str = "blob", *, remote: bool = False,
        expected: str | None = None,
    ) -> None:
        self._raw = raw
        self._limit = limit
        self._label = label
        self._remote = remote  # a short remote read is a broken-off download, not a bad blob
        self._expected = expected  # sha256 hex: checked the moment the stream ends
        self.sha256 = hashlib.sha256()
        self.count = 0

    def mismatch(self) -> NodeError | None:
        """The error for a stream whose bytes are not the ones expected, or None."""
        actual = self.sha256.hexdigest()
        if self._expected is None or (self.count == self._limit and actual == self._expected):
            return None
        return NodeError(
            f"{self._label} has sha256 {actual[:16]}… and {self.count} bytes, the manifest says "
            f"{self._expected[:16]}… and {self._limit}: it is not what the env id promised (the "
            "store is damaged or was tampered with); refusing it"
        )

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n) if n is not None and n >= 0 else self._raw.read()
        except NodeError:
            raise
        except Exception as exc:  # socket errors, http.client.IncompleteRead, fsspec errors
            raise FetchInterrupted(
                f"{self._label}: download interrupted after {self.count} bytes "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if not data and n != 0:
            if self._remote and self.count < self._limit:
                raise FetchInterrupted(
                    f"{self._label}: download ended after {self.count} of {self._limit} bytes"
                )
            bad = self.mismatch()
            if bad is not None:
                raise bad
        self.count += len(data)
        if self.count > self._limit:
            raise NodeError(
                f"{self._label}: larger than the {self._limit} bytes the manifest says: it is not "
                "what the env id promised (the store is damaged or was tampered with); refusing it"
            )
        self.sha256.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def close(self) -> None:
        self._raw.close()


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return parse_size(value)
    except ValueError:
        raise NodeError(
            f"${name}={value!r} is not a positive size (like 500M, 20G)"
        ) from None


def parse_size(text: str) -> int:
    """'20G' -> 20 * 2**30; plain integers are bytes. Zero, negative or non-finite sizes are a
    ValueError: as a cache limit, "-1G" would silently mean "remove everything"."""
    given = text
    text = text.strip().upper().rstrip("B").rstrip("I")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    unit = units.get(text[-1:], 0)
    try:
        value = float(text[:-1]) * unit if unit else float(int(text))
    except ValueError:
        raise ValueError(f"not a size: {given!r} (like 500M, 20G)") from None
    if not value >= 1 or value == float("inf"):  # also NaN
        raise ValueError(f"not a positive size: {text!r}")
    return int(value)
