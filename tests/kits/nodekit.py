"""Node test kit: build layer blobs and store layouts exactly per docs/formats.md."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envship.packing.manifest import (
    Distribution,
    LayerRef,
    Manifest,
    PythonInfo,
)

HOST_VERSION = "{}.{}.{}".format(*sys.version_info[:3])
ENVSHIP = str(Path(sys.executable).parent / "envship")


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


@dataclass(frozen=True)
class Store:
    root: Path
    uri: Path  # <root>/envs/<env-id>.json
    env_id: str
    blobs: tuple[Blob, ...]


def write_code_tree(base: Path) -> dict[str, Path]:
    site = base / "site-packages"
    (site / "tinylib").mkdir(parents=True)
    (site / "tinylib" / "__init__.py").write_text(
        "def main():\n    print('tiny says hi')\n    return 0\n"
    )
    (site / "tinylib-0.1.dist-info").mkdir()
    (site / "tinylib-0.1.dist-info" / "METADATA").write_text("Name: tinylib\nVersion: 0.1\n")
    # a nested .pth file: only processed if the layer dir goes through site.addsitedir
    (site / "tinylib_extra").mkdir()
    (site / "tinylib_extra" / "pthmod.py").write_text("FLAG = 'pth ok'\n")
    (site / "tinylib-extra.pth").write_text("tinylib_extra\n")
    bindir = base / "data" / "bin"
    bindir.mkdir(parents=True)
    script = bindir / "tiny-data-script"
    script.write_text("#!/bin/sh\necho data-script-ran\n")
    script.chmod(0o755)
    return {"site-packages": site, "data/bin": bindir}


def make_small_store(base: Path) -> Store:
    """A store with one small code layer (console script, nested .pth, data/bin script)."""
    trees = write_code_tree(base / "src")
    code = blob_from_tree("code", trees)
    manifest = make_manifest([code], console_scripts={"tiny": "tinylib:main"})
    root = base / "store"
    uri = write_store(root, manifest, [code])
    return Store(root, uri, manifest.env_id, (code,))


class CountingServer:
    """Serves a directory over HTTP on 127.0.0.1 and counts GETs per path.

    With *trickle* = (bytes, seconds), blob bodies are sent that many bytes at a time with that
    pause in between: a slow store, so a node is caught mid-download / mid-unpack."""

    def __init__(self, directory: Path, trickle: tuple[int, float] | None = None) -> None:
        self.counts: Counter[str] = Counter()
        counts, lock = self.counts, threading.Lock()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: object, **kw: object) -> None:
                super().__init__(*a, directory=str(directory), **kw)  # type: ignore[arg-type]

            def do_GET(self) -> None:  # noqa: N802
                with lock:
                    counts[self.path.split("?", 1)[0]] += 1
                super().do_GET()

            def copyfile(self, source: Any, outputfile: Any) -> None:
                if trickle is None or "/blobs/" not in self.path:
                    super().copyfile(source, outputfile)
                    return
                size, pause = trickle
                try:
                    while chunk := source.read(size):
                        outputfile.write(chunk)
                        outputfile.flush()
                        time.sleep(pause)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed node): nothing to report

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()



def node_env(**extra: str) -> dict[str, str]:
    """The test process's environment minus settings that would change what the node does."""
    env = dict(os.environ)
    for key in ("VIRTUAL_ENV", "ENVSHIP_PYTHON", "ENVSHIP_CACHE_MAX", "PYTHONPATH"):
        env.pop(key, None)
    env.update(extra)
    return env
