"""A local directory store's filesystem, in os/shutil: the part of fsspec's LocalFileSystem
that store operations call, with its semantics, so packing to a local store loads no fsspec."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["LocalFiles", "local_root"]

_PREFIXES = ("file://", "local://", "file:", "local:")


def _posix(path: str | os.PathLike[str]) -> str:
    """*path* (a path or file:// URL) absolute and without a trailing slash, as fsspec's
    ``LocalFileSystem._strip_protocol`` gives it (POSIX)."""
    text = os.fspath(path)
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if text.startswith("~"):
        text = os.path.expanduser(text)
    elif not text.startswith("/"):
        text = text[2:] if text.startswith("./") else "" if text == "." else text
        text = f"{os.getcwd()}/{text}"
    return text.rstrip("/") or "/"


def local_root(url: str) -> str | None:
    """The directory of a store given as a plain path, file:// or local:// URL; None for any
    other URL (an fsspec backend opens those)."""
    if os.name != "posix" or "::" in url:
        return None
    scheme, sep, _ = url.partition("://")
    if sep and len(scheme) > 1 and scheme not in ("file", "local"):
        return None
    return _posix(url)


class LocalFiles:
    """Files on a local disk through the calls StoreIO and its transfers make (``info``,
    ``ls``, ``open``, ``mv``, ``rm``...), each one or two os calls, never cached."""

    protocol = ("file", "local")

    def __init__(self) -> None:
        self.dircache: dict[str, Any] = {}  # fsspec's listing cache: nothing is cached here

    def __repr__(self) -> str:
        return "LocalFiles()"

    def __eq__(self, other: object) -> bool:  # stateless: one local disk, as fsspec's is one
        return isinstance(other, LocalFiles)

    def __hash__(self) -> int:
        return hash(LocalFiles)

    def invalidate_cache(self, path: str | None = None) -> None:
        """Nothing to forget: every call reads the disk."""

    # -- reading ------------------------------------------------------------------
    def info(self, path: str | os.PathLike[str], **_: Any) -> dict[str, Any]:
        """fsspec's local `info`: name, size, type (file/directory/other), times, ids."""
        path = _posix(path)
        out = os.stat(path, follow_symlinks=False)
        link = stat.S_ISLNK(out.st_mode)
        if link:
            out = os.stat(path)
        return _info(path, out, link)

    def ls(self, path: str, detail: bool = False, **_: Any) -> list[Any]:
        """The entries of directory *path* (a file lists itself); FileNotFoundError if
        missing."""
        path = _posix(path)
        own = self.info(path)
        if own["type"] != "directory":
            return [own] if detail else [own["name"]]
        found: list[Any] = []
        with os.scandir(path) as it:
            for entry in it:
                # an entry removed since the directory was read is left out
                with contextlib.suppress(FileNotFoundError):
                    found.append(_entry_info(entry) if detail else _posix(entry.path))
        return found

    def exists(self, path: str, **_: Any) -> bool:
        try:
            self.info(path)
        except Exception:  # as fsspec: anything that stops `info` means "not there"
            return False
        return True

    def size(self, path: str) -> int:
        return int(self.info(path)["size"])

    def find(self, path: str, withdirs: bool = False, detail: bool = False, **_: Any
             ) -> Any:
        """Every file under *path* (and directories with *withdirs*), sorted; a file finds
        itself."""
        path = _posix(path)
        found: dict[str, dict[str, Any]] = {}
        try:
            own = self.info(path)
        except FileNotFoundError:
            return found if detail else []
        if own["type"] != "directory" or withdirs:
            found[path] = own
        if own["type"] == "directory":
            for info in self._walk(path):
                if info["type"] != "directory" or withdirs:
                    found[info["name"]] = info
        names = sorted(found)
        return {n: found[n] for n in names} if detail else names

    def _walk(self, path: str) -> Iterator[dict[str, Any]]:
        for info in self.ls(path, detail=True):
            yield info
            if info["type"] == "directory" and not info["islink"]:
                yield from self._walk(info["name"])

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **_: Any) -> bytes:
        with open(_posix(path), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if start is not None:
                f.seek(start if start >= 0 else max(0, size + start))
            if end is None:
                return f.read()
            return f.read(max(0, (end if end >= 0 else size + end) - f.tell()))

    def open(self, path: str, mode: str = "rb", **_: Any) -> IO[Any]:
        """The file itself (no parent created, as fsspec without ``auto_mkdir``)."""
        return open(_posix(path), mode)

    # -- writing ------------------------------------------------------------------
    def pipe_file(self, path: str, value: bytes, **_: Any) -> None:
        with open(_posix(path), "wb") as f:
            f.write(value)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(_posix(path), exist_ok=exist_ok)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = _posix(path)
        if self.exists(path):
            raise FileExistsError(path)
        if create_parents:
            os.makedirs(path, exist_ok=True)
        else:
            os.mkdir(path, **kwargs)

    def mv(self, path1: str, path2: str, **_: Any) -> None:
        shutil.move(_posix(path1), _posix(path2))

    def rm_file(self, path: str) -> None:
        os.remove(_posix(path))

    def rm(self, path: str | list[str], recursive: bool = False, **_: Any) -> None:
        for one in path if isinstance(path, list) else [path]:
            one = _posix(one)
            if os.path.isdir(one) and not os.path.islink(one):
                if not recursive:
                    raise ValueError("Cannot delete directory, set recursive=True")
                shutil.rmtree(one)
            else:
                os.remove(one)

    def sign(self, path: str, expiration: int = 100, **_: Any) -> str:
        raise NotImplementedError("a local directory cannot make presigned URLs")


def _entry_info(entry: os.DirEntry[str]) -> dict[str, Any]:
    out = entry.stat(follow_symlinks=False)
    link = stat.S_ISLNK(out.st_mode)
    size = out.st_size
    kind = _kind(out.st_mode)
    if link:
        try:
            size = entry.stat().st_size
        except OSError:
            size = 0
    info = _info(_posix(entry.path), out, link)
    info["size"], info["type"] = size, kind
    return info


def _kind(mode: int) -> str:
    return "directory" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _info(path: str, out: os.stat_result, link: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": path, "size": out.st_size, "type": _kind(out.st_mode),
        "created": getattr(out, "st_birthtime", out.st_ctime), "islink": link,
        "mode": out.st_mode, "uid": out.st_uid, "gid": out.st_gid, "mtime": out.st_mtime,
        "ino": out.st_ino, "nlink": out.st_nlink,
    }
    if link:
        info["destination"] = os.readlink(path)
    return info
