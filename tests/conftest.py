"""Shared fixtures: real venvs built with uv from real wheels, and a sample editable project."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kits.emulators import Emulator, start_azurite, start_gcs_emulator
from kits.support import (
    AWS_ENV,
    MotoServer,
    SampleEnv,
    make_venv,
    start_moto_server,
    write_sample_project,
)


@pytest.fixture(scope="session")
def sample_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleEnv]:
    """A real venv with numpy (from the index) and an editable setuptools project `mylib`.

    Shared by the whole session: tests must not modify it (copy the project if you edit it).
    """
    base = tmp_path_factory.mktemp("sample")
    project = write_sample_project(base / "mylib")
    py = make_venv(base / "venv", ["numpy"], [project])
    yield SampleEnv(base / "venv", py, project)


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh ENVSHIP_HOME and ENVSHIP_CACHE dirs for one test."""
    home = tmp_path / "envship-home"
    monkeypatch.setenv("ENVSHIP_HOME", str(home))
    monkeypatch.setenv("ENVSHIP_CACHE", str(tmp_path / "node-cache"))
    return home


@pytest.fixture(autouse=True, scope="session")
def _session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Never let a test write to the real ~/.local/share/envship or ~/.cache/envship."""
    base = tmp_path_factory.mktemp("envship-session-home")
    old = {k: os.environ.get(k) for k in ("ENVSHIP_HOME", "ENVSHIP_CACHE")}
    os.environ["ENVSHIP_HOME"] = str(base / "home")
    os.environ["ENVSHIP_CACHE"] = str(base / "cache")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One real moto_server (S3 API) for the whole session, AWS dummies set in the environment."""
    old = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = start_moto_server()
    try:
        yield server
    finally:
        server.stop()
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _emulator(start: object, tmp: Path) -> Iterator[Emulator]:
    """Start an emulator, export what a user would (credentials, endpoint), undo at the end."""
    server: Emulator = start(tmp)  # type: ignore[operator]
    old = {k: os.environ.get(k) for k in server.environ}
    os.environ.update(server.environ)
    try:
        yield server
    finally:
        server.stop()
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One real Azurite Blob server for the session (npm package, installed into .tools/)."""
    yield from _emulator(start_azurite, tmp_path_factory.mktemp("azurite"))


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One real gcp-storage-emulator for the session, with a service account for signing."""
    yield from _emulator(start_gcs_emulator, tmp_path_factory.mktemp("gcs"))
