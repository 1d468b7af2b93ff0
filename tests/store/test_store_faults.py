"""Faults with real processes: concurrent publishers, a publisher killed mid-upload."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from envship.errors import StoreError
from envship.store import Store, Timing, open_store
from kits.storekit import FixtureEnv, env_from_blobs, make_blob, make_random_blob

WORKER = str(Path(__file__).with_name("publish_worker.py"))
MIB = 1 << 20


def big_env(root: Path, mib: int) -> FixtureEnv:
    return env_from_blobs({
        "deps": make_random_blob(root / "deps.bin", mib * MIB),
        "code": make_blob(root / "code.tar.gz", {"site-packages/m.py": b"X = 1\n"}),
    })


def write_spec(env: FixtureEnv, path: Path) -> Path:
    path.write_text(json.dumps({
        "manifest": env.manifest.to_dict(),
        "blobs": {k: str(v) for k, v in env.blobs.items()},
    }))
    return path


def worker(spec: Path, store_url: str, delay: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, str(spec), store_url, str(delay)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )


def store_files(store: Store) -> dict[str, int]:
    loc = store.location
    loc.fs.invalidate_cache()
    return {
        str(k)[len(loc.root):].lstrip("/"): int(v["size"])
        for k, v in loc.fs.find(loc.root, detail=True).items()
    }


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_two_concurrent_publishers_one_copy(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = str(tmp_path / "store") if kind == "local" else request.getfixturevalue("s3_url")
    env = big_env(tmp_path / "blobs", 12)
    spec = write_spec(env, tmp_path / "spec.json")
    procs = [worker(spec, url, delay=0.1) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    results = [json.loads(out.splitlines()[-1].removeprefix("done ")) for out, _ in outs]
    assert results[0]["env_id"] == results[1]["env_id"] == env.manifest.env_id
    store = open_store(url)
    files = store_files(store)
    blobs = {n: s for n, s in files.items() if n.startswith("blobs/")}
    assert blobs == {f"blobs/sha256/{lay.hex}.tar.gz": lay.size for lay in env.manifest.layers}
    assert not any(".tmp-" in n for n in files), files  # no leftovers from the race
    for layer in env.manifest.layers:
        store.fetch_blob(layer.digest, tmp_path / "check" / layer.hex)  # verifies sha256


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_publisher_killed_mid_upload_leaves_no_visible_env(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "local":
        # On another filesystem than the blobs (tmpfs), so the blob is copied: a hard link
        # from the same filesystem is all or nothing, there is no "mid-upload" to kill.
        other = Path(tempfile.mkdtemp(dir="/dev/shm"))
        request.addfinalizer(lambda: shutil.rmtree(other, ignore_errors=True))
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev
        url = str(other / "store")
    else:
        url = request.getfixturevalue("s3_url")
    env = big_env(tmp_path / "blobs", 48)
    deps = env.manifest.layer("deps")
    assert deps is not None
    spec = write_spec(env, tmp_path / "spec.json")
    proc = worker(spec, url, delay=0.1)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        # Past the first object-store part (16 MiB): the upload is well under way.
        if line.startswith("sent ") and int(line.split()[1]) >= 20 * MIB:
            break
        assert time.monotonic() < deadline
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)

    store = open_store(url)
    files = store_files(store)
    assert not any(n.startswith("envs/") for n in files), files  # no manifest
    final = f"blobs/sha256/{deps.hex}.tar.gz"
    assert final not in files, files  # never a partial blob under its final name
    if kind == "s3":
        # The killed process really was in a multipart upload; it was just never completed.
        s3 = store.location.fs
        bucket = url.removeprefix("s3://").split("/")[0]
        uploads = s3.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
        assert any(u["Key"].endswith(f"{deps.hex}.tar.gz") for u in uploads)
        # While the publisher's lease is live, gc cannot tell it from a slow one still
        # sending: the upload stays, even with no grace period.
        store.timing = Timing(settle=0.0)
        store.gc(grace=0)
        left = s3.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
        assert any(u["Key"].endswith(f"{deps.hex}.tar.gz") for u in left)
        # Once that lease is stale, gc aborts it (older than the grace period).
        store.timing = Timing(settle=0.0, lease_ttl=0.0, clock_skew=0.0)
        assert store.gc(grace=0).temp_removed >= 1
        left = s3.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
        assert not any(u["Key"].endswith(f"{deps.hex}.tar.gz") for u in left)
        store.timing = Timing()
    else:
        assert any(".tmp-" in n for n in files)  # the killed copy stayed under a temp name

    # The next publish completes and the env reads back intact.
    result = store.publish(env.manifest, env.blobs)
    assert {x.kind: x.uploaded for x in result.layers}["deps"] is True
    store.fetch_blob(deps.digest, tmp_path / "deps.check")
    assert (tmp_path / "deps.check").read_bytes() == env.blobs[deps.digest].read_bytes()


def test_upload_memory_stays_flat(tmp_path: Path) -> None:
    """A 128 MiB blob goes through in 1 MiB chunks: peak RSS grows by far less than that."""
    env = big_env(tmp_path / "blobs", 128)
    spec = write_spec(env, tmp_path / "spec.json")
    code = (
        "import json, resource, sys; from pathlib import Path\n"
        "from envship.packing.manifest import Manifest; from envship.store import open_store\n"
        "spec = json.loads(Path(sys.argv[1]).read_text())\n"
        "store = open_store(sys.argv[2])\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "store.publish(Manifest.from_dict(spec['manifest']),"
        " {k: Path(v) for k, v in spec['blobs'].items()})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(spec), str(tmp_path / "store")],
                         capture_output=True, text=True, check=True, timeout=300)
    grown_kib = int(out.stdout.strip())
    print(f"peak RSS growth for a 128 MiB upload: {grown_kib} KiB")
    assert grown_kib < 64 * 1024, f"peak RSS grew by {grown_kib} KiB"


@pytest.mark.s3
def test_big_s3_blob_with_wrong_digest_is_aborted(s3_url: str, tmp_path: Path) -> None:
    """Parallel multipart path: a digest mismatch aborts the upload; nothing stays behind."""
    env = big_env(tmp_path / "blobs", 36)  # ≥ 2 parts: the parallel multipart path
    deps = env.manifest.layer("deps")
    assert deps is not None
    Path(env.blobs[deps.digest]).write_bytes(os.urandom(deps.size))  # same size, new bytes
    store = open_store(s3_url)
    with pytest.raises(StoreError, match="changed while uploading"):
        store.publish(env.manifest, env.blobs)
    files = store_files(store)
    assert f"blobs/sha256/{deps.hex}.tar.gz" not in files and not any(
        n.startswith("envs/") for n in files)
    bucket = s3_url.removeprefix("s3://").split("/")[0]
    assert store.location.fs.call_s3("list_multipart_uploads", Bucket=bucket).get(
        "Uploads", []) == []
