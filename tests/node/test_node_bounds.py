"""Hostile blobs stop early (schema 3 bounds, ratio cap, read-ahead digest check);
ENVSHIP_VERIFY re-checks a view's files; presigned signatures do not stay on the node."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from envship.node import NodeError, prepare
from kits.clikit import envship
from kits.nodekit import (
    ENVSHIP,
    NODE_UNSET,
    Blob,
    Manifest2,
    blob_from_members,
    file_member,
    make_manifest2,
    node_env,
    write_store,
)

MB = 1 << 20


def _manifest(blobs: list[Blob], schema: int = 3, **override: Any) -> Manifest2:
    data: dict[str, Any] = make_manifest2(blobs).data
    if schema == 3:
        data["schema"] = "envship.manifest/3"
        for lay, blob in zip(data["layers"], blobs, strict=True):
            with tarfile.open(fileobj=io.BytesIO(blob.data), mode="r:gz") as t:
                lay["unpacked"] = sum(m.size for m in t if m.isfile())
    for lay in data["layers"]:
        lay.update(override)
    return Manifest2(data)


def _code(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Blob:
    return replace(blob_from_members("code", members), dists=("tinylib==0.1",))


def _small() -> Blob:
    return _code([file_member("site-packages/tinylib/__init__.py", b"X = 1\n")])


@contextmanager
def peak_disk(root: Path) -> Iterator[list[int]]:
    """Largest number of bytes (allocated blocks) seen under *root* while the block runs."""
    peak = [0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            total = 0
            for dirpath, _, names in os.walk(root):
                for n in names:
                    with suppress(OSError):
                        total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            peak[0] = max(peak[0], total)
            time.sleep(0.002)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def test_schema3_bounds_stop_a_bomb_the_env_id_covers(tmp_path: Path) -> None:
    """A blob whose digest matches but that inflates past the layer's promised bytes."""
    bomb = _code([file_member("site-packages/tinylib/zeros.bin", bytes(200 * MB))])
    manifest = _manifest([bomb], unpacked=1000)  # the manifest (env id) promises 1000 bytes
    uri = write_store(tmp_path / "store", manifest, [bomb])
    cache = tmp_path / "cache"
    with peak_disk(cache) as peak, pytest.raises(NodeError) as err:
        prepare(uri, cache_dir=cache)
    message = str(err.value)
    assert "\n" not in message
    assert f"layer code {bomb.digest[:19]}" in message
    assert "not what the env id promised" in message and "1000 bytes" in message
    assert peak[0] < 8 * MB, peak[0]  # stopped at 1000 bytes + 1 MB of slack
    assert [n for n in os.listdir(cache / "layers") if not n.startswith(".")] == []


def test_schema3_file_count_is_enforced(tmp_path: Path) -> None:
    many = _code([file_member(f"site-packages/tinylib/m{i}.py", b"") for i in range(500)])
    manifest = _manifest([many], files=1)
    uri = write_store(tmp_path / "store", manifest, [many])
    with pytest.raises(NodeError, match="holds more than 1 files.*not what the env id promised"):
        prepare(uri, cache_dir=tmp_path / "cache")


def test_schema2_ratio_cap_and_files(tmp_path: Path) -> None:
    bomb = _code([file_member("site-packages/tinylib/zeros.bin", bytes(120 * MB))])
    assert len(bomb.data) < 200 * 1024  # ~120 kB of gzip: a 1000x ratio
    uri = write_store(tmp_path / "s2", _manifest([bomb], schema=2), [bomb])
    cache = tmp_path / "cache"
    with peak_disk(cache) as peak, pytest.raises(NodeError) as err:
        prepare(uri, cache_dir=cache)
    assert "200 times its" in str(err.value), err.value
    cap = 200 * len(bomb.data) + 64 * MB
    assert peak[0] <= cap + 4 * MB, (peak[0], cap)
    many = _code([file_member(f"site-packages/tinylib/m{i}.py", b"") for i in range(50)])
    uri = write_store(tmp_path / "s2b", _manifest([many], schema=2, files=3), [many])
    with pytest.raises(NodeError, match="more than 3 files"):
        prepare(uri, cache_dir=tmp_path / "cache")


def test_tampered_bomb_is_refused_by_its_digest_before_it_is_unpacked(tmp_path: Path) -> None:
    """The store's blob was replaced: the read-ahead hashes the whole (small) blob first."""
    small = _small()
    manifest = _manifest([small])
    store = tmp_path / "store"
    uri = write_store(store, manifest, [small])
    bomb = _code([file_member("site-packages/tinylib/zeros.bin", bytes(100 * MB))])
    (store / "blobs" / "sha256" / f"{small.hex}.tar.gz").write_bytes(bomb.data)
    cache = tmp_path / "cache"
    with peak_disk(cache) as peak, pytest.raises(NodeError) as err:
        prepare(uri, cache_dir=cache)
    assert "not what the env id promised" in str(err.value)
    assert "has sha256" in str(err.value) or "larger than" in str(err.value)
    assert peak[0] < 40 * MB, peak[0]


def _tiny_env(tmp_path: Path) -> tuple[Path, str]:
    blob = _code([
        file_member("site-packages/tinylib/__init__.py", b"def main():\n    print('tiny')\n"),
        file_member("site-packages/tinylib-0.1.dist-info/METADATA",
                    b"Name: tinylib\nVersion: 0.1\n"),
    ])
    manifest = _manifest([blob])
    return write_store(tmp_path / "store", manifest, [blob]), blob.hex


def test_envship_verify_rechecks_the_view(tmp_path: Path) -> None:
    uri, _ = _tiny_env(tmp_path)
    cache = tmp_path / "cache"
    env = node_env(ENVSHIP_VERIFY="1")
    args = [ENVSHIP, "exec", "--cache", str(cache), str(uri), "--", "python", "-c",
            "import tinylib; tinylib.main()"]
    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and first.stdout == "tiny\n", first.stderr
    view = prepare(uri, cache_dir=cache)
    site = Path(view.path) / "lib" / next(os.listdir(Path(view.path) / "lib").__iter__()) / \
        "site-packages"
    # an extra .pth (the view's owner, or root, wrote it)
    os.chmod(site, 0o755)
    (site / "evil.pth").write_text("import sys; print('pth ran')\n")
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "evil.pth was added" in refused.stderr
    assert "pth ran" not in refused.stdout
    unchecked = subprocess.run(args, env=node_env(), capture_output=True, text=True)
    assert "pth ran" in unchecked.stdout and "tiny" in unchecked.stdout  # the check is opt-in
    (site / "evil.pth").unlink()
    # an edited module (same inode as the layer's file)
    init = site / "tinylib" / "__init__.py"
    os.chmod(init, 0o644)
    with open(init, "a") as f:
        f.write("print('edited')\n")
    with pytest.raises(NodeError, match=r"tinylib/__init__.py was changed"):
        os.environ["ENVSHIP_VERIFY"] = "1"
        try:
            prepare(uri, cache_dir=cache)
        finally:
            del os.environ["ENVSHIP_VERIFY"]


def test_presigned_view_keeps_no_signature(tmp_path: Path, serve: Any) -> None:
    uri, hex_ = _tiny_env(tmp_path)
    store = tmp_path / "store"
    server = serve(store)
    obj = json.loads(uri.read_bytes())
    for lay in obj["layers"]:
        lay["url"] = f"{server.url}/blobs/sha256/{lay['digest'][7:]}.tar.gz?X-Amz-Signature=s3cr3t"
    presigned = tmp_path / f"{json.loads(uri.read_bytes()) and uri.stem}.presigned.json"
    presigned.write_text(json.dumps(obj))
    view = prepare(presigned, cache_dir=tmp_path / "cache")
    text = (Path(view.path) / "manifest.json").read_text()
    assert "s3cr3t" not in text and '"url"' not in text
    assert view.manifest["layers"][0]["digest"] == f"sha256:{hex_}"
    # every file the node wrote: no signature anywhere in the cache
    for dirpath, _, names in os.walk(tmp_path / "cache"):
        for n in names:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                assert b"s3cr3t" not in Path(p).read_bytes(), p


def test_dry_run_shows_presigned_urls_redacted(tmp_path: Path, serve: Any) -> None:
    pytest.importorskip("pyspark")
    uri, _ = _tiny_env(tmp_path)
    store = tmp_path / "store"
    server = serve(store)
    obj = json.loads(uri.read_bytes())
    for lay in obj["layers"]:
        lay["url"] = f"{server.url}/blobs/sha256/{lay['digest'][7:]}.tar.gz?X-Amz-Signature=s1g"
    (store / "envs" / f"{uri.stem}.presigned.json").write_text(json.dumps(obj))
    ref = f"{server.url}/envs/{uri.stem}.presigned.json?X-Amz-Signature=t0psecret"
    (tmp_path / "job.py").write_text("print(1)\n")
    args = ["spark-submit", ref, "--dry-run", "--master", "local", "job.py"]
    unset: dict[str, str | None] = dict.fromkeys(NODE_UNSET)
    shown = envship(*args, cwd=tmp_path, env=unset)
    assert shown.returncode == 0, shown.stderr
    assert "t0psecret" not in shown.stdout and "<signature redacted>" in shown.stdout
    args.insert(1, "--show-signatures")
    whole = envship(*args, cwd=tmp_path, env=unset)
    assert "t0psecret" in whole.stdout, whole.stderr


def test_links_between_parts_of_a_layer_stay_relative_in_the_view(tmp_path: Path) -> None:
    from kits.nodekit import dir_member, link_member

    blob = _code([
        file_member("site-packages/tinylib/__init__.py", b"X = 1\n"),
        dir_member("data/share"),
        link_member("data/share/lnk", "../../site-packages/tinylib"),
    ])
    uri = write_store(tmp_path / "store", _manifest([blob]), [blob])
    view = Path(prepare(uri, cache_dir=tmp_path / "cache").path)
    target = os.readlink(view / "share" / "lnk")
    assert not target.startswith("/"), target  # never an absolute link into the layer
    site = next((view / "lib").iterdir()) / "site-packages"
    assert (view / "share" / "lnk").resolve() == (site / "tinylib").resolve()
    assert (view / "share" / "lnk" / "__init__.py").read_text() == "X = 1\n"


def test_the_single_file_runtime_stops_bombs_the_same_way(
    node_script: Path, tmp_path: Path
) -> None:
    import sys

    bomb = _code([file_member(f"site-packages/tinylib/z{i}.bin", bytes(4 * MB))
                  for i in range(16)])
    uri = write_store(tmp_path / "s3", _manifest([bomb], unpacked=1000), [bomb])
    small = _small()
    tampered = write_store(tmp_path / "t", _manifest([small]), [small])
    (tmp_path / "t" / "blobs" / "sha256" / f"{small.hex}.tar.gz").write_bytes(bomb.data)
    for ref in (uri, tampered):
        cache = tmp_path / "cache"
        with peak_disk(cache) as peak:
            proc = subprocess.run([sys.executable, str(node_script), "--cache", str(cache),
                                   str(ref), "--", "true"], capture_output=True, text=True,
                                  timeout=120, env=node_env())
        assert proc.returncode == 1
        assert proc.stderr.count("\n") == 1 and "not what the env id promised" in proc.stderr
        assert peak[0] < 8 * MB, peak[0]
