"""Engine fixtures: real venvs shipped to a local store, and client venvs without user packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kits.condakit import CondaKit, install_env
from kits.enginekit import (
    RAY,
    PackedConda,
    Shipped,
    client_venv,
    make_venv,
    ship_venv,
    version_of,
)
from kits.support import run, uv_bin, write_sample_project


def pytest_configure(config: pytest.Config) -> None:
    for name, what in (
        ("dask", "starts a real Dask scheduler and workers from a shipped env"),
        ("ray", "installs Ray (~80 MB) in test venvs and starts a local Ray head"),
        ("torch", "installs torch (CPU, from the local wheel) and runs torch.distributed"),
        ("tensorflow", "installs tensorflow-cpu (~1.5 GB) and runs a 2-worker TF job"),
    ):
        config.addinivalue_line("markers", f"{name}: {what}")


@pytest.fixture(scope="session")
def engines_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="session")
def dask_env(engines_base: Path) -> Iterator[Shipped]:
    """numpy, pandas, distributed and an editable `mylib`, shipped to a local store."""
    base = engines_base / "dask"
    project = write_sample_project(base / "mylib")
    py = make_venv(
        base / "env",
        ["numpy", "pandas", f"distributed=={version_of('distributed')}"],
        [project],
    )
    yield ship_venv(py, base / "store")


@pytest.fixture(scope="session")
def dask_client(engines_base: Path) -> Path:
    """Interpreter of a venv with distributed + envship, without numpy, pandas or mylib."""
    py = client_venv(engines_base / "dask-client", [f"distributed=={version_of('distributed')}"])
    probe = run([str(py), "-c", "import importlib.util as u; print(u.find_spec('numpy'))"])
    assert probe.stdout.strip() == "None", "the client venv must not have numpy"
    return py


@pytest.fixture(scope="session")
def conda_env(engines_base: Path, conda_kit: CondaKit) -> PackedConda:
    """The conda kit's env (python, libfoo, pyfoo, noarch foocli, a wheel) with distributed and
    Ray pip-installed on top, packed into a local store; the prefix is moved away before any
    test runs it, so nothing at its old path can make a test pass."""
    from envship import pack

    base = engines_base / "conda"
    prefix = base / "env"
    python = install_env(conda_kit, prefix, base / "pkgs")
    run([uv_bin(), "pip", "install", "-q", "--python", str(python), "--break-system-packages",
         f"distributed=={version_of('distributed')}", RAY])
    result = pack(python, output=base / "store")
    prefix.rename(base / "moved-away")
    uri = str(base / "store" / "envs" / f"{result.env_id}.json")
    return PackedConda(uri, result.env_id, base / "store", result, prefix)


@pytest.fixture(scope="session")
def conda_node_cache(engines_base: Path) -> Path:
    """One node cache for the engines that run the conda env on this host: its view is
    assembled once (Ray's layer alone is 200 MB unpacked)."""
    return engines_base / "conda-node-cache"
