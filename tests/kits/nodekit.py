"""Node test kit: build layer blobs and store layouts exactly per docs/formats.md."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from envship.packing.manifest import (
    Distribution,
    LayerRef,
    Manifest,
    PythonInfo,
    canonical_json,
)

from .support import suite_tmp

HOST_VERSION = "{}.{}.{}".format(*sys.version_info[:3])
ENVSHIP = str(Path(sys.executable).parent / "envship")


@dataclass(frozen=True)
class Blob:
    kind: str
    digest: str
    data: bytes
    files: int
    dists: tuple[str, ...] = ()  # schema 2: "name==version" of the distributions it holds
    bytecode: str = "packed"  # schema 2: packed | node | none

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def ref(self) -> LayerRef:
        return LayerRef(self.kind, self.digest, len(self.data), self.files)


def _gzip(raw: bytes) -> bytes:
    # Level 6 (zlib's default): within 1 % of level 9's size on real wheels, 2.6x faster.
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
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


def blob_from_tree(kind: str, trees: Mapping[str, Path], *, keep_pyc: bool = False) -> Blob:
    """A deterministic layer blob: *trees* maps a layer prefix ("site-packages") to a directory.

    Bytecode is left out unless *keep_pyc* (schema 2 layers with ``"bytecode": "packed"``).
    """
    entries: list[tuple[str, Path]] = []
    for prefix, src in trees.items():
        for dirpath, dirnames, filenames in os.walk(src):
            if not keep_pyc:
                dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            rel = os.path.relpath(dirpath, src)
            base = prefix if rel == "." else f"{prefix}/{rel}"
            entries.append((base, Path(dirpath)))
            for f in filenames:
                if keep_pyc or not f.endswith(".pyc"):
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


class AnyManifest(Protocol):
    @property
    def env_id(self) -> str: ...

    def to_json(self) -> bytes: ...


@dataclass(frozen=True)
class Manifest2:
    """An ``envship.manifest/2`` manifest, written per /work/notes/schema2.md (docs/formats.md)
    until the packer writes them: layer order, dists, bytecode, cache_tag."""

    data: dict[str, Any]

    @property
    def env_id(self) -> str:
        return hashlib.sha256(canonical_json(self.data)).hexdigest()

    def to_json(self) -> bytes:
        return canonical_json(self.data)


def make_manifest2(
    blobs: Iterable[Blob],
    *,
    version: str = HOST_VERSION,
    console_scripts: Mapping[str, str] | None = None,
    sort: bool = True,
) -> Manifest2:
    """Schema 2 over *blobs* (kinds python/code/dist), in the contract's order unless not *sort*."""
    order = {"python": 0, "code": 1, "dist": 2}
    items = list(blobs)
    if sort:
        items.sort(key=lambda b: (order[b.kind], list(b.dists)))
    mm = "".join(version.split(".")[:2])
    layers: list[dict[str, Any]] = []
    dists: list[dict[str, str]] = []
    for b in items:
        lay: dict[str, Any] = {"kind": b.kind, "digest": b.digest, "size": len(b.data),
                               "files": b.files}
        if b.kind != "python":
            lay["dists"] = list(b.dists)
            lay["bytecode"] = b.bytecode
            for d in b.dists:
                name, _, ver = d.partition("==")
                source = "editable" if b.kind == "code" else "index"
                dists.append({"name": name, "version": ver, "source": source, "layer": b.digest})
        layers.append(lay)
    return Manifest2({
        "schema": "envship.manifest/2",
        "python": {"implementation": "cpython", "version": version, "abi": f"cp{mm}",
                   "platform": "linux_x86_64", "cache_tag": f"cpython-{mm}"},
        "layers": layers,
        "distributions": sorted(dists, key=lambda d: d["name"]),
        "entry_points": {"console_scripts": dict(sorted((console_scripts or {}).items()))},
        "excluded": [],
    })


def compile_tree(site: Path) -> None:
    """Byte-compile *site* as pack does for ``"bytecode": "packed"``: unchecked-hash pycs whose
    co_filename is relative to site-packages."""
    prog = (
        "import compileall, py_compile, sys; compileall.compile_dir(sys.argv[1], quiet=2, "
        "stripdir=sys.argv[1], invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
    )
    subprocess.run([sys.executable, "-I", "-c", prog, str(site)], check=True)


def dist_layers(
    site: Path, scripts: Path, work: Path, *, node_compiled: Iterable[str] = ()
) -> list[Blob]:
    """Split an installed venv's site-packages into one ``dist`` blob per distribution, by
    RECORD, as the packer lays them out: scripts under ``data/bin`` with an ``env python``
    shebang, pycs compiled (except for the distributions named in *node_compiled*)."""
    later = set(node_compiled)
    blobs = []
    for info in sorted(site.glob("*.dist-info")):
        meta = dict(
            line.split(": ", 1) for line in (info / "METADATA").read_text().splitlines()
            if ": " in line
        )
        name, version = meta["Name"], meta["Version"]
        tree = work / f"{name}-{version}"
        for row in (info / "RECORD").read_text().splitlines():
            rel = row.rsplit(",", 2)[0]
            if not rel or rel.endswith(".pyc"):
                continue
            src = (site / rel).resolve()
            if src.is_relative_to(scripts.resolve()):
                dest = tree / "data" / "bin" / src.name
                text = src.read_bytes()
                if text.startswith(b"#!") and b"python" in text.split(b"\n", 1)[0]:
                    text = b"#!/usr/bin/env python\n" + text.split(b"\n", 1)[1]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(text)
                dest.chmod(src.stat().st_mode & 0o777)
                continue
            if not src.is_relative_to(site.resolve()):
                continue
            dest = tree / "site-packages" / src.relative_to(site.resolve())
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
            dest.chmod(src.stat().st_mode & 0o777)
        if name not in later:
            compile_tree(tree / "site-packages")
        trees = {p: tree / p for p in ("site-packages", "data/bin") if (tree / p).is_dir()}
        blob = blob_from_tree("dist", trees, keep_pyc=True)
        blobs.append(replace(blob, dists=(f"{name}=={version}",),
                             bytecode="node" if name in later else "packed"))
    return blobs


def write_store(root: Path, manifest: AnyManifest, blobs: Iterable[Blob]) -> Path:
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
        # shutdown() waits for the loop's next poll: 0.5 s by default, at every test's end
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()



# Settings of the test process's environment that would change what the node does.
NODE_UNSET = ("VIRTUAL_ENV", "ENVSHIP_PYTHON", "ENVSHIP_CACHE_MAX", "PYTHONPATH", "ENVSHIP_ENV",
              "ENVSHIP_ENV_FILE")


def node_env(**extra: str) -> dict[str, str]:
    """The test process's environment minus settings that would change what the node does."""
    env = dict(os.environ)
    for key in NODE_UNSET:
        env.pop(key, None)
    env["TMPDIR"] = suite_tmp()
    env.update(extra)
    return env


@dataclass(frozen=True)
class Prepared:
    cmdline: str  # the command line of the process while it prepared the env (NULs as spaces)
    waiting: str  # the line it wrote while it waited for the cache lock
    returncode: int
    stdout: str
    stderr: str


def run_held_at_preparation(
    argv: list[str], env: Mapping[str, str], cache: Path, cwd: Path | None = None
) -> Prepared:
    """Run *argv* (which prepares an env in *cache*) while this process holds the cache's
    global lock, as a pruner would: the run waits, says so on stderr, and its command line —
    what every user of a node can read — is taken then. Then the lock is released."""
    import fcntl

    (cache / "locks").mkdir(parents=True, exist_ok=True)
    held = os.open(cache / "locks" / "cache.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        env={**env, "ENVSHIP_LOCK_WAIT": "0.3"},
    )
    try:
        assert proc.stderr is not None
        waiting = proc.stderr.readline()
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode().replace("\0", " ")
    finally:
        os.close(held)
    out, err = proc.communicate(timeout=300)
    return Prepared(cmdline, waiting, proc.returncode, out, err)
