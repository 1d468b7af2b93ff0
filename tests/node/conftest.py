"""Node fixtures: small real layer stores, a numpy store from a real venv, a counting HTTP server."""

from __future__ import annotations

import http.server
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nodekit import Blob, blob_from_tree, make_manifest, write_store

from support import make_venv


@dataclass(frozen=True)
class Store:
    root: Path
    uri: Path  # <root>/envs/<env-id>.json
    env_id: str
    blobs: tuple[Blob, ...]


def _write_code_tree(base: Path) -> dict[str, Path]:
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
    trees = _write_code_tree(base / "src")
    code = blob_from_tree("code", trees)
    manifest = make_manifest([code], console_scripts={"tiny": "tinylib:main"})
    root = base / "store"
    uri = write_store(root, manifest, [code])
    return Store(root, uri, manifest.env_id, (code,))


@pytest.fixture
def small_store(tmp_path: Path) -> Store:
    return make_small_store(tmp_path)


@pytest.fixture(scope="session")
def numpy_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """deps = a real venv's site-packages with numpy (installed by uv); code = tinylib."""
    base = tmp_path_factory.mktemp("numpy-store")
    venv = base / "venv"
    make_venv(venv, ["numpy"])
    mm = "python{}.{}".format(*sys.version_info[:2])
    deps = blob_from_tree("deps", {"site-packages": venv / "lib" / mm / "site-packages"})
    code = blob_from_tree("code", _write_code_tree(base / "src"))
    manifest = make_manifest([code, deps], console_scripts={"tiny": "tinylib:main"})
    root = base / "store"
    uri = write_store(root, manifest, [code, deps])
    return Store(root, uri, manifest.env_id, (code, deps))


class CountingServer:
    """Serves a directory over HTTP on 127.0.0.1 and counts GETs per path."""

    def __init__(self, directory: Path) -> None:
        self.counts: Counter[str] = Counter()
        counts, lock = self.counts, threading.Lock()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: object, **kw: object) -> None:
                super().__init__(*a, directory=str(directory), **kw)  # type: ignore[arg-type]

            def do_GET(self) -> None:  # noqa: N802
                with lock:
                    counts[self.path.split("?", 1)[0]] += 1
                super().do_GET()

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


@pytest.fixture
def serve() -> Iterator[type[CountingServer]]:
    servers: list[CountingServer] = []

    def start(directory: Path) -> CountingServer:
        s = CountingServer(directory)
        servers.append(s)
        return s

    yield start  # type: ignore[misc]
    for s in servers:
        s.close()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "node-cache"


def node_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.update(extra)
    return env
