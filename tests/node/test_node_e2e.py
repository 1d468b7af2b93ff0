"""End to end with the real packer and store: pack the sample venv, run it through the node."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from envship import pack
from envship.node import prepare
from envship.packing.pipeline import PackResult
from envship.store import open_store
from kits.nodekit import ENVSHIP, node_env
from kits.support import SampleEnv, start_moto_server

CHECK = (
    "import numpy, mylib, sys, os; "
    "print(numpy.arange(5).sum(), mylib.hello(), mylib.__file__, sys.prefix, sep='\\n')"
)


@pytest.fixture(scope="module")
def packed(sample_env: SampleEnv, tmp_path_factory: pytest.TempPathFactory) -> PackResult:
    base = tmp_path_factory.mktemp("packed")
    return pack(sample_env.venv, output=base / "out", cache_dir=base / "build-cache")


def _exec(
    cache: Path, ref: str, *cmd: str, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENVSHIP, "exec", "--cache", str(cache), ref, "--", *cmd],
        capture_output=True, text=True, cwd=cwd, env=node_env(**env), timeout=600,
    )


def test_packed_venv_runs_from_another_environment(
    packed: PackResult, sample_env: SampleEnv, tmp_path: Path
) -> None:
    assert packed.output is not None
    cache = tmp_path / "cache"
    # `envship` here is the dev venv's: numpy and mylib come from the env, not from it
    proc = _exec(cache, str(packed.output), "sh", "-c", f'mylib-hello && python -c "{CHECK}"',
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    hello, total, hello2, mylib_file, prefix = proc.stdout.splitlines()
    assert hello == hello2 == "hello from mylib 1"
    assert total == "10"
    # the editable package was materialised into the code layer: not read from the checkout,
    # but from the view's one site-packages, a hard link of the file unpacked under layers/
    view_file = Path(mylib_file)
    assert view_file.is_relative_to(cache / "envs" / packed.env_id)
    assert not view_file.is_relative_to(sample_env.project)
    inode = view_file.stat().st_ino
    assert any(p.stat().st_ino == inode for p in (cache / "layers").rglob("mylib/__init__.py"))
    assert Path(prefix) == cache / "envs" / packed.env_id
    # the same env id by the packer and the node
    assert os.listdir(cache / "envs") == [packed.env_id]


def test_env_with_python_layer_needs_no_node_python(
    sample_env: SampleEnv, tmp_path: Path
) -> None:
    result = pack(sample_env.venv, with_python=True, output=tmp_path / "out",
                  cache_dir=tmp_path / "build-cache")
    assert result.manifest.layer("python") is not None
    cache = tmp_path / "cache"
    proc = _exec(cache, str(tmp_path / "out"), "python", "-c",
                 "import sys, numpy, mylib; print(sys.base_prefix)",
                 cwd=tmp_path, ENVSHIP_PYTHON="/nonexistent/python3")
    assert proc.returncode == 0, proc.stderr
    py_hex = result.manifest.layer("python").hex  # type: ignore[union-attr]
    assert Path(proc.stdout.strip()) == cache / "layers" / py_hex / "python"


def test_published_store_over_http(packed: PackResult, tmp_path: Path, serve: object) -> None:
    store = open_store(tmp_path / "store")
    store.publish(packed.manifest, packed.blobs)
    server = serve(tmp_path / "store")  # type: ignore[operator]
    uri = f"{server.url}/envs/{packed.env_id}.json"
    proc = _exec(tmp_path / "cache", uri, "python", "-c", CHECK, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["10", "hello from mylib 1"]
    for lay in packed.manifest.layers:
        assert server.counts[f"/blobs/sha256/{lay.hex}.tar.gz"] == 1


def test_fsspec_url_in_process(packed: PackResult, tmp_path: Path) -> None:
    url = f"memory://node-e2e/{os.getpid()}"
    store = open_store(url)
    store.publish(packed.manifest, packed.blobs)
    view = prepare(store.env_uri(packed.env_id), cache_dir=tmp_path / "cache")
    out = subprocess.run([view.python, "-c", "import mylib; print(mylib.hello())"],
                         capture_output=True, text=True, env=view.environ())
    assert out.stdout.strip() == "hello from mylib 1", out.stderr


@pytest.mark.s3
def test_presigned_s3_env_without_credentials(
    packed: PackResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in aws.items():
        monkeypatch.setenv(k, v)
    moto = start_moto_server()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
        store = open_store(f"s3://{moto.new_bucket()}/store", moto.storage_options())
        store.publish(packed.manifest, packed.blobs)
        signed = store.presign(packed.env_id, expires=600)
        assert signed.url.startswith("http")
        # the node has no credentials and no endpoint config: only the presigned URL
        env = {k: "" for k in (*aws, "AWS_ENDPOINT_URL")}
        proc = _exec(tmp_path / "cache", signed.url, "python", "-c", CHECK, cwd=tmp_path, **env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[1] == "hello from mylib 1"
    finally:
        moto.stop()
