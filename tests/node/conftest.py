"""Node fixtures: small layer stores, a numpy store from a real venv, a counting HTTP server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kits.mergedkit import Envs, make_merged_envs
from kits.nodekit import (
    CountingServer,
    Store,
    blob_from_tree,
    make_manifest,
    make_small_store,
    write_code_tree,
    write_store,
)
from kits.support import make_venv


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
    code = blob_from_tree("code", write_code_tree(base / "src"))
    manifest = make_manifest([code, deps], console_scripts={"tiny": "tinylib:main"})
    root = base / "store"
    uri = write_store(root, manifest, [code, deps])
    return Store(root, uri, manifest.env_id, (code, deps))


@pytest.fixture(scope="session")
def merged_envs(tmp_path_factory: pytest.TempPathFactory) -> Envs:
    """Two schema-2 envs of real wheels sharing most of their per-distribution blobs."""
    return make_merged_envs(tmp_path_factory.mktemp("merged"))


@pytest.fixture
def serve() -> Iterator[type[CountingServer]]:
    servers: list[CountingServer] = []

    def start(directory: Path, trickle: tuple[int, float] | None = None) -> CountingServer:
        s = CountingServer(directory, trickle)
        servers.append(s)
        return s

    yield start  # type: ignore[misc]
    for s in servers:
        s.close()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "node-cache"
