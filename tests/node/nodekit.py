"""Node test kit: build layer blobs and store layouts exactly per docs/formats.md."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from envship.manifest import (
    Distribution,
    LayerRef,
    Manifest,
    PythonInfo,
)

HOST_VERSION = "{}.{}.{}".format(*os.sys.version_info[:3])  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Blob:
    kind: str
    digest: str
    data: bytes
    files: int

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def ref(self) -> LayerRef:
        return LayerRef(self.kind, self.digest, len(self.data), self.files)


def _gzip(raw: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw)
    return out.getvalue()


def blob_from_members(kind: str, members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> Blob:
    """A layer blob from raw tar members (used as-is: malicious members too)."""
    raw = io.BytesIO()
    files = 0
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
            files += info.isfile()
    data = _gzip(raw.getvalue())
    return Blob(kind, "sha256:" + hashlib.sha256(data).hexdigest(), data, files)


def blob_from_tree(kind: str, trees: Mapping[str, Path]) -> Blob:
    """A deterministic layer blob: *trees* maps a layer prefix ("site-packages") to a directory."""
    entries: list[tuple[str, Path]] = []
    for prefix, src in trees.items():
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            rel = os.path.relpath(dirpath, src)
            base = prefix if rel == "." else f"{prefix}/{rel}"
            entries.append((base, Path(dirpath)))
            for f in filenames:
                if not f.endswith(".pyc"):
                    entries.append((f"{base}/{f}", Path(dirpath) / f))
    # parent directories of prefixes ("data" for "data/bin")
    for prefix in trees:
        parts = prefix.split("/")
        for i in range(1, len(parts)):
            entries.append(("/".join(parts[:i]), Path(".")))
    entries = sorted(dict(entries).items())

    def gen() -> Iterable[tuple[tarfile.TarInfo, bytes | None]]:
        for name, path in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if path.is_symlink():
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                info.mode = 0o777
                yield info, None
            elif path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                yield info, None
            else:
                data = path.read_bytes()
                info.size = len(data)
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                yield info, data

    return blob_from_members(kind, gen())


def file_member(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def dir_member(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, None


def link_member(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def make_manifest(
    blobs: Iterable[Blob],
    *,
    version: str = HOST_VERSION,
    console_scripts: Mapping[str, str] | None = None,
    distributions: Iterable[Distribution] = (),
) -> Manifest:
    mm = "".join(version.split(".")[:2])
    return Manifest(
        python=PythonInfo("cpython", version, f"cp{mm}", "linux_x86_64"),
        layers=tuple(b.ref() for b in blobs),
        distributions=tuple(distributions),
        entry_points={"console_scripts": dict(console_scripts or {})},
    )


def write_store(root: Path, manifest: Manifest, blobs: Iterable[Blob]) -> Path:
    """Write blobs and the manifest in the store layout; return the env URI (a local path)."""
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "envs").mkdir(parents=True, exist_ok=True)
    for b in blobs:
        (root / "blobs" / "sha256" / f"{b.hex}.tar.gz").write_bytes(b.data)
    uri = root / "envs" / f"{manifest.env_id}.json"
    uri.write_bytes(manifest.to_json())
    return uri


def write_tag(root: Path, name: str, env_id: str) -> Path:
    (root / "tags").mkdir(parents=True, exist_ok=True)
    path = root / "tags" / f"{name}.json"
    path.write_text(json.dumps({"env": env_id}))
    return path
