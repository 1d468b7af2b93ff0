"""Physical floors on this machine: read, hash and gzip the reference site-packages."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from isal import igzip_threaded, isal_zlib

from .common import Results, median_time, run

__all__ = ["measure_floors"]

_CHUNK = 1 << 20


def _stream(path: Path, sink: Callable[[bytes], object]) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sink(chunk)


def _raw_read(site: Path) -> None:
    # GNU tar skips reading file contents when its archive *is* /dev/null: pipe through cat.
    run(["bash", "-c", f"tar cf - -C '{site}' . | cat > /dev/null"])


def _sha256(tar: Path) -> None:
    digest = hashlib.sha256()
    _stream(tar, digest.update)
    digest.hexdigest()


def _zlib1(tar: Path) -> None:
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    _stream(tar, comp.compress)
    comp.flush()


def _isal1(tar: Path) -> None:
    comp = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    _stream(tar, comp.compress)
    comp.flush()


def _igzip_threaded(tar: Path, threads: int) -> None:
    with open(os.devnull, "wb") as null, igzip_threaded.open(
        null, "wb", compresslevel=1, threads=threads
    ) as out:
        _stream(tar, out.write)


def _tarfile_zlib1(site: Path) -> None:
    # What a pure-Python deterministic packer costs: tarfile walking the tree + zlib level 1.
    class _Null(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            return len(b)  # type: ignore[arg-type]

    with tarfile.open(fileobj=_Null(), mode="w:gz", compresslevel=1) as tf:
        tf.add(str(site), arcname="site-packages")


def measure_floors(site: Path, scratch: Path, results: Results, runs: int) -> int:
    """Record the floors; returns the size in bytes of the uncompressed tar of *site*."""
    tar = scratch / "site-packages.tar"
    run(["tar", "cf", str(tar), "-C", str(site), "."])
    size = tar.stat().st_size
    results.context["floor_tar_bytes"] = size
    _sha256(tar)  # page cache warm-up for every floor below (all are measured warm)
    steps: list[tuple[str, Callable[[], None], str]] = [
        ("raw read", lambda: _raw_read(site), "tar cf - site-packages | cat > /dev/null"),
        ("sha256", lambda: _sha256(tar), "hashlib over the tar, 1 MiB reads"),
        ("zlib-1 gzip", lambda: _zlib1(tar), "1 core"),
        ("isal-1 gzip", lambda: _isal1(tar), "1 core, isal_zlib"),
        ("igzip_threaded-1", lambda: _igzip_threaded(tar, 2), "2 threads"),
        ("tarfile+zlib-1", lambda: _tarfile_zlib1(site), "pure-Python tarfile walk + gzip 1"),
    ]
    for name, fn, note in steps:
        results.add_time(f"floor: {name}", "floor", median_time(_timed(fn), runs), note)
    tar.unlink()
    return size


def _timed(fn: Callable[[], None]) -> Callable[[], float]:
    def step() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return step
