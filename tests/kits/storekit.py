"""Store test helpers: small envs made of real blobs, and the S3 test credentials."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from envship.packing.manifest import Distribution, LayerRef, Manifest, PythonInfo


@dataclass(frozen=True)
class FixtureEnv:
    manifest: Manifest
    blobs: dict[str, Path]  # digest -> local blob


def make_blob(path: Path, files: dict[str, bytes]) -> tuple[Path, str, int]:
    """A deterministic tar.gz holding *files*; returns (path, digest, size)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    data = gzip.compress(raw.getvalue(), mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def make_random_blob(path: Path, size: int) -> tuple[Path, str, int]:
    """*size* random bytes standing in for a big layer (no need to be a real tar for the store)."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return path, "sha256:" + digest.hexdigest(), size


def make_env(root: Path, code: str = "VALUE = 1\n", deps: bytes = b"x = 1\n") -> FixtureEnv:
    """A two-layer env (deps + code) whose blobs are real deterministic tar.gz files."""
    deps_blob = make_blob(root / f"deps-{uuid.uuid4().hex}.tar.gz",
                          {"site-packages/dep/__init__.py": deps})
    code_blob = make_blob(root / f"code-{uuid.uuid4().hex}.tar.gz",
                          {"site-packages/mylib/__init__.py": code.encode()})
    return env_from_blobs({"code": code_blob, "deps": deps_blob})


def env_from_blobs(blobs: dict[str, tuple[Path, str, int]]) -> FixtureEnv:
    layers = tuple(
        LayerRef(kind, blobs[kind][1], blobs[kind][2], 1)
        for kind in ("python", "code", "deps")
        if kind in blobs
    )
    manifest = Manifest(
        python=PythonInfo("cpython", "3.11.7", "cp311", "linux_x86_64"),
        layers=layers,
        distributions=(Distribution("mylib", "0.1", "editable", "code"),),
        entry_points={"console_scripts": {"mylib-hello": "mylib:main"}},
    )
    return FixtureEnv(manifest, {b[1]: b[0] for b in blobs.values()})
