"""Store fixtures: a real S3 API (moto_server) and small env fixtures made of real blobs."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envship.manifest import Distribution, LayerRef, Manifest, PythonInfo
from support import MotoServer, start_moto_server

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key-value",
    "AWS_DEFAULT_REGION": "us-east-1",
}


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


@pytest.fixture
def fixture_env(tmp_path: Path) -> FixtureEnv:
    return make_env(tmp_path / "blobs")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A real moto_server for the session (AWS dummies + region set in the environment)."""
    old = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = start_moto_server()
    yield server
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """A fresh bucket on the session's moto server; returns its name."""
    import s3fs

    name = f"b-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=moto.endpoint, skip_instance_cache=True).mkdir(name)
    return name


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
