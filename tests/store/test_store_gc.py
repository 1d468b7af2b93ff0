"""Tags, listing and garbage collection."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from envship.errors import StoreError
from envship.node.formats import provenance_key
from envship.store import Store, Timing, open_store, parse_duration
from kits.storekit import make_env


def _age(store: Store, rel: str, seconds: float) -> None:
    """Make a local store file look *seconds* old."""
    path = Path(store.location.path(rel))
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def _alone(store: Store) -> Store:
    """No publisher runs beside these gcs: they need not wait the protocol's `settle` (2 s)
    before their second look and again before removing their marker."""
    store.timing = Timing(settle=0.0)
    return store


def _age_env(store: Store, env_id: str, seconds: float) -> None:
    _age(store, f"envs/{env_id}.json", seconds)
    # Provenance holds the creation date `store ls` and gc use: drop it so mtime counts.
    Path(store.location.path(*provenance_key(env_id))).unlink()
    for lay in store.read_manifest(env_id).layers:
        _age(store, f"blobs/sha256/{lay.hex}.tar.gz", seconds)


@pytest.fixture
def three_envs(tmp_path: Path) -> tuple[Store, list[str]]:
    """A local store with envs published 3 days, 2 days and 1 day ago (oldest first)."""
    store = open_store(tmp_path / "store")
    ids = []
    for i, age in enumerate((3, 2, 1)):
        env = make_env(tmp_path / f"e{i}", code=f"VALUE = {i}\n", deps=f"d = {i}\n".encode())
        ids.append(store.publish(env.manifest, env.blobs).env_id)
        _age_env(store, ids[-1], age * 86400)
    return store, ids


def test_tags_point_at_envs(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    env = make_env(tmp_path)
    env_id = store.publish(env.manifest, env.blobs).env_id
    uri = store.set_tag("prod", env_id)
    assert uri == f"{store_url.rstrip('/')}/tags/prod.json"
    assert store.location.fs.cat_file(store.location.tag_path("prod")) == (
        b'{"env": "' + env_id.encode() + b'"}\n'
    )
    assert store.read_tag("prod") == env_id and store.tags() == {"prod": env_id}
    assert store.resolve("prod") == env_id and store.resolve(env_id[:10]) == env_id
    with pytest.raises(StoreError, match="bad tag name"):
        store.set_tag("../evil", env_id)
    with pytest.raises(StoreError, match="not found"):
        store.set_tag("ghost", "f" * 64)
    with pytest.raises(StoreError, match="no env or tag"):
        store.resolve("nothing-here")


def test_store_ls_reports_size_date_tags(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    env = make_env(tmp_path)
    before = time.time() - 5
    env_id = store.publish(env.manifest, env.blobs).env_id
    store.set_tag("v1", env_id)
    (info,) = store.list_envs()
    assert info.env_id == env_id
    assert info.size == sum(lay.size for lay in env.manifest.layers)
    assert info.tags == ("v1",) and info.layers == ("code", "deps")
    assert info.created is not None and before <= info.created <= time.time() + 5


def test_gc_keeps_referenced_and_young_blobs(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    env = make_env(tmp_path)
    store.publish(env.manifest, env.blobs)
    orphan = make_env(tmp_path / "orphan", code="ORPHAN = 1\n")
    code = orphan.manifest.layer("code")
    assert code is not None
    store.location.fs.pipe_file(store.location.blob_path(code.digest),
                                orphan.blobs[code.digest].read_bytes())
    # Default grace period: the unreferenced blob may belong to an upload in flight.
    result = _alone(store).gc()
    assert result.blobs_removed == () and result.blobs_kept_young == 1
    # Without grace it goes; blobs of the published env stay.
    result = store.gc(grace=0)
    assert result.blobs_removed == (code.digest,)
    assert not store.location.fs.exists(store.location.blob_path(code.digest))
    for lay in env.manifest.layers:
        assert store.location.fs.exists(store.location.blob_path(lay.digest))


def test_gc_keep_older_than_tagged_dry_run(three_envs: tuple[Store, list[str]]) -> None:
    store, (oldest, middle, newest) = three_envs
    store.set_tag("stable", oldest)
    assert [e.env_id for e in store.list_envs()] == [newest, middle, oldest]
    _alone(store)

    dry = store.gc(keep=1, dry_run=True)
    assert dry.envs_removed == (middle,) and dry.dry_run
    assert len(store.env_ids()) == 3  # nothing deleted

    assert store.gc(older_than=parse_duration("5d")).envs_removed == ()
    result = store.gc(keep=1)
    assert result.envs_removed == (middle,)
    assert sorted(store.env_ids()) == sorted([oldest, newest])
    # Only the middle env's own blobs went (each env here has its own two blobs).
    assert len(result.blobs_removed) == 2 and result.bytes_freed > 0
    for env_id in (oldest, newest):
        for lay in store.read_manifest(env_id).layers:
            assert store.location.fs.exists(store.location.blob_path(lay.digest))
    assert not Path(store.location.path(*provenance_key(middle))).exists()


def test_gc_removes_stale_temp_files_only(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    blobs = Path(store.location.path("blobs", "sha256"))
    blobs.mkdir(parents=True)
    stale = blobs / (".%s.tar.gz.tmp-aaaa" % ("1" * 64))
    fresh = blobs / (".%s.tar.gz.tmp-bbbb" % ("2" * 64))
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    _age(store, f"blobs/sha256/{stale.name}", 7200)
    envs = Path(store.location.path("envs"))
    envs.mkdir()
    stale_manifest = envs / (".%s.json.tmp-cccc" % ("3" * 64))
    stale_manifest.write_bytes(b"{")
    _age(store, f"envs/{stale_manifest.name}", 7200)
    assert store.gc().temp_removed == 2
    assert not stale.exists() and fresh.exists() and not stale_manifest.exists()


def test_gc_stops_on_unreadable_manifest(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    env = make_env(tmp_path)
    env_id = store.publish(env.manifest, env.blobs).env_id
    Path(store.location.env_path(env_id)).write_text("{broken")
    with pytest.raises(StoreError, match="nothing was collected"):
        store.gc(grace=0)
    for lay in env.manifest.layers:
        assert Path(store.location.blob_path(lay.digest)).exists()


def test_gc_and_verify_refuse_a_store_that_does_not_exist(tmp_path: Path) -> None:
    """Through the library as through the CLI: a mistyped URL is not "0 envs: ok"."""
    store = open_store(str(tmp_path / "stor"))
    assert store.list_envs() == []  # documented: check() tells them apart
    for call in (store.verify, store.gc):
        with pytest.raises(StoreError, match="does not exist"):
            call()
    assert not (tmp_path / "stor").exists()
    for bad in (None, "", 5):  # not a directory called "None"
        with pytest.raises(StoreError, match="is not a store"):
            open_store(bad)  # type: ignore[arg-type]


def test_parse_duration() -> None:
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800
    assert parse_duration("0") == 0
    with pytest.raises(StoreError, match="no unit: write 7s, 7m, 7h, 7d or 7w"):
        parse_duration("7")  # a week, or every env older than 7 seconds?
    assert parse_duration("7d") == 7 * 86400 and parse_duration("1.5h") == 5400
    with pytest.raises(StoreError, match="bad duration"):
        parse_duration("soon")


@pytest.mark.s3
def test_long_lived_store_sees_what_other_processes_wrote(s3_url: str, tmp_path: Path) -> None:
    """fsspec caches listings per filesystem instance (s3fs keeps them): a Store kept open
    across gcs must still list the blobs, envs and leases other processes wrote since."""
    import subprocess
    import sys

    store = open_store(s3_url)
    mine = make_env(tmp_path / "mine", code="VALUE = 0\n", deps=b"d = 0\n")
    store.set_tag("prod", store.publish(mine.manifest, mine.blobs).env_id)
    assert store.gc(grace=0).blobs_removed == ()  # lists blobs/, envs/, leases/: now cached
    env = make_env(tmp_path / "e", code="VALUE = 1\n", deps=b"d = 1\n")
    orphan = "sha256:" + "ab" * 32
    # Another process: publishes an env, and leaves a blob no manifest names.
    script = ("import sys; from envship.store import open_store\n"
              "s = open_store(sys.argv[1])\n"
              "s.location.fs.pipe_file(s.location.blob_path(sys.argv[2]), b'orphan')\n")
    subprocess.run([sys.executable, "-c", script, s3_url, orphan], check=True, timeout=120,
                   env=dict(os.environ))
    published = subprocess.run(
        [sys.executable, "-c",
         "import json, sys; from pathlib import Path; from envship.store import open_store\n"
         "from envship.packing.manifest import Manifest\n"
         "m = Manifest.from_dict(json.loads(sys.argv[2]))\n"
         "blobs = {k: Path(v) for k, v in json.loads(sys.argv[3]).items()}\n"
         "print(open_store(sys.argv[1]).publish(m, blobs).env_id)\n",
         s3_url, json.dumps(env.manifest.to_dict()),
         json.dumps({k: str(v) for k, v in env.blobs.items()})],
        check=True, timeout=120, capture_output=True, text=True, env=dict(os.environ),
    ).stdout.strip()
    assert published in store.env_ids()
    result = store.gc(grace=0)
    assert result.blobs_removed == (orphan,)  # the other process's orphan, seen and collected
    assert published in store.env_ids()  # its env is kept: listed, and its blobs in use


@pytest.mark.s3
def test_an_object_store_that_gc_emptied_is_empty_not_missing(
    s3_url: str, tmp_path: Path
) -> None:
    """S3 has no empty folders: after gc removed the last env and its blobs nothing is left
    under the store's prefix, and the store still lists as empty (its bucket exists)."""
    from kits.clikit import envship

    store = _alone(open_store(s3_url))
    env = make_env(tmp_path)
    store.publish(env.manifest, env.blobs)
    result = store.gc(keep=0, grace=0)
    assert len(result.envs_removed) == 1 and result.blobs_removed
    assert not store.location.fs.exists(store.location.path())  # nothing under the prefix
    store.check()
    assert store.list_envs() == []
    proc = envship("store", "ls", s3_url)
    assert proc.returncode == 0 and f"no envs in {s3_url}" in proc.stderr, proc.stderr
    # a store in a bucket that does not exist is still an error, not "no envs"
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"s3://no-such-bucket-{os.getpid()}/envs").check()
