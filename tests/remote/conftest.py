"""Fixtures for shipping functions: a client venv (numpy, pandas, envship, editable mylib),
shipped to a local store, and scripts run with that venv's interpreter."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kits.remotekit import ShippedClient
from kits.support import make_venv, run, write_sample_project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shipped_client(tmp_path_factory: pytest.TempPathFactory) -> ShippedClient:
    base = tmp_path_factory.mktemp("remote")
    project = write_sample_project(base / "mylib")
    py = make_venv(base / "client", ["numpy", "pandas", "cloudpickle"], [project, REPO])
    environ = dict(os.environ)
    environ["ENVSHIP_HOME"] = str(base / "home")
    environ["ENVSHIP_CACHE"] = str(base / "cache")
    environ["VIRTUAL_ENV"] = str(py.parent.parent)  # as `source client/bin/activate` does
    store = base / "store"
    out = run([str(py.parent / "envship"), "ship", str(store), "--json"], env=environ)
    uri = json.loads(out.stdout)["env_uri"]
    return ShippedClient(py, project, uri, environ)
