"""Azure Blob (Azurite + adlfs) and GCS (gcp-storage-emulator + gcsfs) stores, for real.

Each backend gets one real emulator per session; the env is a real venv (an editable project
only, so nodes unpack little) shipped once per backend. Clients and nodes are configured only
through the environment variables users set (AZURE_STORAGE_CONNECTION_STRING;
STORAGE_EMULATOR_HOST + GOOGLE_APPLICATION_CREDENTIALS), as for S3 with moto. The GCS
emulator checks neither tokens nor URL signatures (Azurite checks SAS signatures); URLs are
signed by the real client code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envship.store import open_store
from kits.emulators import Emulator
from kits.storekit import make_env
from kits.support import HOST_PYTHON, run, uv_bin, write_sample_project

ENVSHIP = str(Path(sys.executable).parent / "envship")
PROBE = "import mylib, sys; print(mylib.hello(), sys.prefix)"
CLOUD_VARS = ("AZURE_", "GOOGLE_", "STORAGE_EMULATOR_HOST", "AWS_")


@dataclass(frozen=True)
class Shipped:
    backend: str
    store: str  # az://container/envs or gs://bucket/envs
    env_id: str
    env_uri: str
    emulator: Emulator
    tmp: Path


def cli(*args: str, ok: bool = True, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([ENVSHIP, *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else dict(os.environ))
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def bare_environ(tmp: Path) -> dict[str, str]:
    """A node with no cloud credentials, endpoints or SDK configuration at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLOUD_VARS)}
    env["ENVSHIP_CACHE"] = str(tmp / f"node-{uuid.uuid4().hex[:8]}")
    return env


@pytest.fixture(scope="module")
def small_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only an editable project (no pip: not seeded); returns its python."""
    base = tmp_path_factory.mktemp("cloud-venv")
    project = write_sample_project(base / "mylib")
    run([uv_bin(), "venv", "-q", "-p", HOST_PYTHON, str(base / "venv")])
    python = base / "venv" / "bin" / "python"
    run([uv_bin(), "pip", "install", "-q", "-p", str(python), "-e", str(project)])
    return python


@pytest.fixture(scope="module", params=["az", "gs"])
def shipped(request: pytest.FixtureRequest, small_venv: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipped]:
    """The small env shipped (library API) to a fresh container/bucket of the backend."""
    from envship.shipping import ship

    backend = str(request.param)
    emulator: Emulator = request.getfixturevalue("azurite" if backend == "az" else "gcs_emulator")
    bucket = f"envship-{uuid.uuid4().hex[:10]}"
    emulator.make_bucket(bucket)
    store = f"{backend}://{bucket}/envs"
    env = ship(store, python=str(small_venv))
    yield Shipped(backend, store, env.env_id, env.uri, emulator,
                  tmp_path_factory.mktemp(f"cloud-{backend}"))


def test_ship_put_every_blob_and_a_warm_ship_sends_nothing(
    shipped: Shipped, small_venv: Path
) -> None:
    store = open_store(shipped.store)
    manifest = store.read_manifest(shipped.env_id)
    assert {d.name for d in manifest.distributions} == {"mylib"}
    for layer in manifest.layers:
        assert store.location.fs.size(store.location.blob_path(layer.digest)) == layer.size
    warm = json.loads(cli("ship", shipped.store, "--python", str(small_venv), "--json",
                          "--tag", "prod").stdout)
    assert warm["env_id"] == shipped.env_id and warm["bytes_sent"] == 0
    assert warm["tag_uri"] == f"{shipped.store}/tags/prod.json"


def test_exec_through_the_envship_package_and_a_tag(shipped: Shipped) -> None:
    tag_uri = cli("tag", shipped.env_uri, "cloudtest").stdout.strip()
    assert tag_uri == f"{shipped.store}/tags/cloudtest.json"
    env = {**os.environ, "ENVSHIP_CACHE": str(shipped.tmp / "node-pkg")}
    for ref in (shipped.env_uri, tag_uri):
        run = cli("exec", ref, "--", "python", "-c", PROBE, env=env)
        assert "hello from mylib 1" in run.stdout


def test_single_file_node_reads_the_store_through_fsspec(
    shipped: Shipped, tmp_path: Path
) -> None:
    """The single-file runtime on a node whose Python has fsspec and the backend (here: this
    test venv's) reads az:// / gs:// directly with the node's credentials."""
    script = tmp_path / "envship_node.py"
    script.write_text(cli("node-script").stdout)
    env = {**os.environ, "ENVSHIP_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, str(script), shipped.env_uri, "--", "python", "-c",
                          PROBE], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert "hello from mylib 1" in run.stdout


def test_single_file_node_without_fsspec_says_presign_in_one_line(
    shipped: Shipped, tmp_path: Path
) -> None:
    script = tmp_path / "envship_node.py"
    script.write_text(cli("node-script").stdout)
    run = subprocess.run([sys.executable, "-S", str(script), shipped.env_uri, "--", "true"],
                         capture_output=True, text=True, timeout=120,
                         env=bare_environ(tmp_path))
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"reading {shipped.backend}:// URLs needs fsspec" in lines[0]
    assert "presign" in lines[0]


def test_single_file_node_without_the_backend_names_the_extra(
    shipped: Shipped, tmp_path: Path, small_venv: Path
) -> None:
    """A node Python with fsspec but not adlfs/gcsfs: one line naming package and extra."""
    run([uv_bin(), "venv", "-q", "-p", HOST_PYTHON, str(tmp_path / "node")])
    node_py = tmp_path / "node" / "bin" / "python"
    run([uv_bin(), "pip", "install", "-q", "-p", str(node_py), "fsspec"])
    script = tmp_path / "envship_node.py"
    script.write_text(cli("node-script").stdout)
    proc = subprocess.run([str(node_py), str(script), shipped.env_uri, "--", "true"],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    package, extra = {"az": ("adlfs", "envship[azure]"), "gs": ("gcsfs", "envship[gcs]")}[
        shipped.backend]
    assert f"needs {package} on this node" in lines[0] and extra in lines[0]


def test_missing_backend_package_names_the_envship_extra(shipped: Shipped) -> None:
    """Library side: the store cannot be opened without adlfs/gcsfs; the error says which
    `envship[...]` to install (run where the package cannot be imported)."""
    package = {"az": "adlfs", "gs": "gcsfs"}[shipped.backend]
    code = (f"import sys; sys.modules[{package!r}] = None\n"
            "from envship.store import open_store\n"
            f"open_store({shipped.store!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    extra = {"az": "envship[azure]", "gs": "envship[gcs]"}[shipped.backend]
    assert f"needs {package}" in proc.stderr and f"pip install {extra}" in proc.stderr


def test_presigned_env_runs_on_a_node_without_credentials_or_fsspec(
    shipped: Shipped, tmp_path: Path
) -> None:
    signed = cli("presign", shipped.env_uri, "--expires", "600").stdout.strip()
    assert signed.startswith(shipped.emulator.endpoint)
    assert ("sig=" if shipped.backend == "az" else "Signature=") in signed
    script = tmp_path / "envship_node.py"
    script.write_text(cli("node-script").stdout)
    run = subprocess.run([sys.executable, "-S", str(script), signed, "--", "python", "-c",
                          PROBE], capture_output=True, text=True, timeout=300,
                         env=bare_environ(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "hello from mylib 1" in run.stdout


@pytest.mark.slow
def test_verify_then_gc_removes_only_the_untagged_env(
    shipped: Shipped, tmp_path: Path
) -> None:
    cli("tag", shipped.env_uri, "keep")
    extra = make_env(tmp_path / "blobs", code=f"VALUE = '{uuid.uuid4().hex}'\n")
    store = open_store(shipped.store)
    other = store.publish(extra.manifest, extra.blobs).env_id
    report = json.loads(cli("store", "verify", shipped.store, "--deep", "--json").stdout)
    assert report["ok"] is True, report
    listed = {e["env_id"]: e for e in json.loads(cli("store", "ls", shipped.store,
                                                     "--json").stdout)}
    assert set(listed) >= {shipped.env_id, other}
    assert all(e["created"].endswith("Z") for e in listed.values())

    gc = json.loads(cli("gc", shipped.store, "--keep", "0", "--grace", "0s", "--json").stdout)
    assert gc["envs_removed"] == [other]  # the shipped env is tagged: kept
    # only blobs younger than --grace are spared, so this needs the backend's mtime
    assert sorted(gc["blobs_removed"]) == sorted(lay.digest for lay in extra.manifest.layers)
    for layer in extra.manifest.layers:
        assert not store.location.fs.exists(store.location.blob_path(layer.digest))
    after = store.verify(deep=True)
    assert after.ok, after


def test_gcs_presign_without_a_service_account_key_says_what_signs(
    gcs_emulator: Emulator, tmp_path: Path
) -> None:
    """Anonymous (or token-only) credentials cannot sign: one line naming what can."""
    from envship.errors import StoreError

    bucket = f"envship-{uuid.uuid4().hex[:10]}"
    gcs_emulator.make_bucket(bucket)
    store = open_store(f"gs://{bucket}/envs", {"token": "anon"})
    fixture = make_env(tmp_path / "blobs")
    env_id = store.publish(fixture.manifest, fixture.blobs).env_id
    with pytest.raises(StoreError) as err:
        store.presign(env_id)
    message = str(err.value)
    assert "\n" not in message and "cannot make presigned URLs" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
