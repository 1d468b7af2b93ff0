"""Store fixtures: a real S3 API (moto_server) and small env fixtures made of real blobs."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from kits.storekit import FixtureEnv, make_env
from kits.support import MotoServer


@pytest.fixture
def fixture_env(tmp_path: Path) -> FixtureEnv:
    return make_env(tmp_path / "blobs")


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """A fresh bucket on the session's moto server; returns its name."""
    return moto.new_bucket()


@pytest.fixture(
    params=["local", "file", "memory", pytest.param("s3", marks=pytest.mark.s3)]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests against a local path, file://, memory:// and a real S3 API (moto)."""
    kind = request.param
    if kind == "local":
        return str(tmp_path / "store")
    if kind == "file":
        return f"file://{tmp_path}/store"
    if kind == "memory":
        return f"memory://envship-tests/{uuid.uuid4().hex}"
    bucket_name = request.getfixturevalue("bucket")
    moto_server: MotoServer = request.getfixturevalue("moto")
    os.environ["AWS_ENDPOINT_URL"] = moto_server.endpoint  # honoured by botocore
    request.addfinalizer(lambda: os.environ.pop("AWS_ENDPOINT_URL", None))
    return f"s3://{bucket_name}/team/envs"


@pytest.fixture
def s3_url(moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh S3 store on moto; botocore finds the endpoint through AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    return f"s3://{bucket}/envs"
