"""Write a layer plan as a deterministic tar.gz blob, hashing it while it streams to disk."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import secrets
import tarfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from isal import igzip, igzip_threaded

from ..errors import PackError
from ..progress import Progress
from .layers import LayerEntry

__all__ = ["Blob", "BlockWriter", "ContentKeys", "archive_files", "content_key", "write_blob",
           "COMPRESS_LEVEL", "SHEBANG"]

COMPRESS_LEVEL = 1
SHEBANG = b"#!/usr/bin/env python"
_THREADS = 2
_BLOCK = 1 << 20
_BIG = 4 << 20  # files above this are streamed in chunks, smaller ones read whole (ahead)
_READERS = 2
_WINDOW = 32
_ZERO = bytes(tarfile.BLOCKSIZE)



@dataclass(frozen=True)
class Blob:
    """A finished layer blob."""

    digest: str  # "sha256:<hex>"
    size: int
    files: int
    path: Path | None  # None: not here, held by the store the env is shipped to
    unpacked: int  # bytes of its regular files once extracted (the node's extraction bound)


def content_key(sha256_hex: str, executable: bool) -> str:
    """What a file is to a content fingerprint: the sha256 of the bytes the layer holds for it
    (after its transform) and whether it is executable."""
    return f"{sha256_hex}:{1 if executable else 0}"


@dataclass
class ContentKeys:
    """Asks :func:`write_blob` for the :func:`content_key` of the files named in *wanted*,
    taken from the bytes it archives (no second read); it fills *keys* (arcname -> key)."""

    wanted: frozenset[str]
    keys: dict[str, str] = field(default_factory=dict)


class _HashingFile(io.RawIOBase):
    """Write-through file that hashes and counts the bytes it writes."""

    def __init__(self, fh: io.BufferedWriter) -> None:
        self._fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._fh.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


class BlockWriter:
    """Feeds the compressor fixed-size blocks, whatever the sizes of the writes.

    ``igzip_threaded`` compresses each block it is handed on its own (with the previous
    block as dictionary), so block boundaries shape the output: cutting the tar stream at fixed
    offsets makes the gzip bytes a function of the tar bytes alone.
    """

    def __init__(self, out: io.BufferedIOBase, block: int = _BLOCK) -> None:
        self._out = out
        self._block = block
        self._buf = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        buf = self._buf
        buf += data
        if len(buf) >= self._block:
            cut = len(buf) - len(buf) % self._block
            with memoryview(buf) as view:
                for off in range(0, cut, self._block):
                    self._out.write(bytes(view[off:off + self._block]))
            del buf[:cut]
        return len(data)

    def finish(self) -> None:
        """Write the last, partial block."""
        if self._buf:
            self._out.write(bytes(self._buf))
            self._buf.clear()


def _header(name: str, size: int, mode: int, is_dir: bool) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if is_dir else size
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _rewrite_shebang(data: bytes) -> bytes:
    if not data.startswith(b"#!"):
        return data
    first, sep, rest = data.partition(b"\n")
    if first.startswith(b"#!/bin/sh") and rest.startswith(b"'''exec' "):
        # pip's long-shebang trampoline: '''exec' /path/python "$0" "$@"\n' '''
        _, sep2, rest = rest.partition(b"\n")
        if rest.startswith(b"' '''"):
            _, _, rest = rest.partition(b"\n")
        return SHEBANG + b"\n" + rest
    if b"python" in first:
        return SHEBANG + sep + rest
    return data


def transformed(entry: LayerEntry, data: bytes) -> bytes:
    """The bytes the layer holds for *entry*, read as *data* from its source."""
    if entry.transform == "shebang":
        return _rewrite_shebang(data)
    if entry.transform == "record":
        return _rewrite_record(data, entry.record_keep, entry.record_blank)
    if entry.transform == "unprefix" and entry.relocate is not None:
        from .sources.conda import unprefix

        return unprefix(data, *entry.relocate)
    return data


def _rewrite_record(data: bytes, keep: frozenset[str], blank: frozenset[str]) -> bytes:
    """The RECORD rows of the files the blob holds, sorted (installers order them their own
    way), scripts without hash/size (their shebang is rewritten)."""
    rows = []
    for row in csv.reader(io.StringIO(data.decode("utf-8"))):
        if not row:
            continue
        if row[0] in blank:
            rows.append([row[0], "", ""])
        elif row[0] in keep:
            rows.append(row)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(sorted(rows))
    return out.getvalue().encode("utf-8")


def _dirs_of(arcname: str) -> list[str]:
    parts = arcname.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _chunks(entry: LayerEntry, fd: int, size: int, step: int) -> Iterator[bytes]:
    """The *size* bytes of *fd* in reads of at most *step*; a file that shrank is an error."""
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, step))
        if not chunk:
            raise PackError(f"{entry.source} shrank while it was being packed; pack again.")
        yield chunk
        left -= len(chunk)


def _open(entry: LayerEntry) -> int:
    try:
        return os.open(entry.source, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise PackError(
            f"cannot read {entry.source}: it vanished while packing (or is listed in a RECORD "
            "but missing); reinstall the package it belongs to, then pack again."
        ) from exc
    except OSError as exc:
        raise PackError(
            f"cannot read {entry.source}: {exc.strerror}; fix its permissions or exclude it."
        ) from exc


def _load(entry: LayerEntry, keyed: bool = False) -> tuple[int, bytes | None, str]:
    """(tar mode, content, content key if *keyed* else "") of a small or transformed file;
    content None: stream it later (and its key is taken then).

    Runs in reader threads (os.read and hashing release the GIL), so file I/O overlaps
    compression.
    """
    if entry.transform == "symlink":
        return 0o777, entry.source.encode("utf-8", "surrogateescape"), ""
    fd = _open(entry)
    try:
        st = os.fstat(fd)
        mode = 0o755 if st.st_mode & 0o111 else 0o644
        if not entry.transform and st.st_size > _BIG:
            return mode, None, ""
        data = b"".join(_chunks(entry, fd, st.st_size, _BIG))
    except OSError as exc:
        raise PackError(f"cannot read {entry.source}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    data = transformed(entry, data)
    return mode, data, content_key(hashlib.sha256(data).hexdigest(), mode == 0o755
                                   ) if keyed else ""


def _stream(out: BlockWriter, entry: LayerEntry, mode: int, keyed: bool = False
            ) -> tuple[int, int, str]:
    """Append a big file chunk by chunk; returns (header length, file size, content key if
    *keyed* else "")."""
    fd = _open(entry)
    sha = hashlib.sha256() if keyed else None
    try:
        size = os.fstat(fd).st_size
        header = _header(entry.arcname, size, mode, False)
        out.write(header)
        for chunk in _chunks(entry, fd, size, _BLOCK):
            out.write(chunk)
            if sha is not None:
                sha.update(chunk)
    except OSError as exc:
        raise PackError(f"cannot read {entry.source}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    key = content_key(sha.hexdigest(), mode == 0o755) if sha is not None else ""
    return len(header), size, key


def _add_file(
    out: BlockWriter, entry: LayerEntry, loaded: tuple[int, bytes | None, str], keyed: bool
) -> tuple[int, int, str]:
    """Append one file entry; returns (tar bytes written, the file's size, its content key
    if *keyed* and it is a regular file, else "")."""
    mode, data, key = loaded
    if entry.transform == "symlink":
        info = tarfile.TarInfo(entry.arcname)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.source, 0o777
        header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        out.write(header)
        return len(header), 0, ""
    if data is None:
        header_len, size, key = _stream(out, entry, mode, keyed)
    else:
        size = len(data)
        header = _header(entry.arcname, size, mode, False)
        out.write(header)
        out.write(data)
        header_len = len(header)
    pad = -size % tarfile.BLOCKSIZE
    if pad:
        out.write(_ZERO[:pad])
    return header_len + size + pad, size, key


def _prefetched(entries: Sequence[LayerEntry], keyed: frozenset[str]
                ) -> Iterator[tuple[int, bytes | None, str]]:
    """_load() of each entry, in order, read ahead by a few threads within a bounded window."""
    pool = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="envship-read")
    window: deque[Future[tuple[int, bytes | None, str]]] = deque()
    it = iter(entries)
    try:
        for entry in it:
            window.append(pool.submit(_load, entry, entry.arcname in keyed))
            if len(window) >= _WINDOW:
                break
        while window:
            loaded = window.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                window.append(pool.submit(_load, nxt, nxt.arcname in keyed))
            yield loaded
    finally:
        for fut in window:
            fut.cancel()
        pool.shutdown(wait=True)


def write_blob(
    entries: Sequence[LayerEntry],
    blob_dir: Path,
    progress: Progress | None = None,
    label: str = "layer",
    content: ContentKeys | None = None,
) -> Blob:
    """Archive *entries* (sorted by path) into ``blob_dir/<sha256>.tar.gz``; atomic.
    *progress* gets (*label*, files done, files total); *content*, if given, the content keys
    of the files it asks for."""
    total = len(entries)
    # Named before it exists, so that the cleanup below knows it wherever a signal's exception
    # lands (mkstemp can be interrupted between creating the file and returning its name).
    tmp = blob_dir / f".tmp-{secrets.token_hex(8)}.tar.gz"
    ours: Path | None = tmp
    try:
        try:
            blob_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            ours = None  # not created (an O_EXCL clash would be somebody else's file)
            raise PackError(f"cannot write layer blobs to {blob_dir}: {exc.strerror or exc}"
                            ) from exc
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingFile(raw)
            gz: io.BufferedIOBase = igzip_threaded.open(  # type: ignore[no-untyped-call]
                hashing, "wb", compresslevel=COMPRESS_LEVEL, threads=_THREADS, block_size=_BLOCK
            )
            out = BlockWriter(gz)
            try:
                seen_dirs: set[str] = set()
                written = unpacked = 0
                wanted = content.wanted if content is not None else frozenset()
                files = zip(entries, _prefetched(entries, wanted), strict=True)
                for i, (entry, loaded) in enumerate(files):
                    for d in _dirs_of(entry.arcname):
                        if d not in seen_dirs:
                            seen_dirs.add(d)
                            header = _header(d, 0, 0o755, True)
                            out.write(header)
                            written += len(header)
                    tar_bytes, size, key = _add_file(out, entry, loaded,
                                                     entry.arcname in wanted)
                    if key and content is not None:
                        content.keys[entry.arcname] = key
                    written += tar_bytes
                    unpacked += size
                    if progress is not None and (i % 64 == 0 or i + 1 == total):
                        progress(label, i + 1, total)
                # end-of-archive: two zero blocks, padded to tar's 10 KiB record size
                end = 2 * tarfile.BLOCKSIZE
                end += -(written + end) % tarfile.RECORDSIZE
                out.write(bytes(end))
                out.finish()
            finally:
                gz.close()
        digest = hashing.sha.hexdigest()
        final = blob_dir / f"{digest}.tar.gz"
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        if ours is not None:
            ours.unlink(missing_ok=True)
        raise
    regular = sum(1 for e in entries if e.transform != "symlink")  # "files": regular files
    return Blob(f"sha256:{digest}", hashing.size, regular, final, unpacked)


def archive_files(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A small deterministic ``.tar.gz`` made in memory from ``{path: (content, mode)}``, by the
    same rules as a layer blob (sorted entries, parent directories first, mtime 0, no owners,
    gzip header without name or time): boot archives and other generated files."""
    out = bytearray()
    seen_dirs: set[str] = set()
    for name in sorted(files, key=lambda a: a.replace("/", "\0")):
        data, mode = files[name]
        for d in _dirs_of(name):
            if d not in seen_dirs:
                seen_dirs.add(d)
                out += _header(d, 0, 0o755, True)
        out += _header(name, len(data), 0o755 if mode & 0o111 else 0o644, False)
        out += data + bytes(-len(data) % tarfile.BLOCKSIZE)
    end = 2 * tarfile.BLOCKSIZE
    out += bytes(end + (-(len(out) + end) % tarfile.RECORDSIZE))
    return igzip.compress(bytes(out), compresslevel=COMPRESS_LEVEL, mtime=0)
