"""Publishing and reading envs: the same code on a local path, file://, memory:// and S3."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from envship.errors import ManifestError, StoreError
from envship.node.formats import provenance_key
from envship.packing.manifest import canonical_json
from envship.store import Store, open_store
from kits.storekit import FixtureEnv, make_env


def files_in(store: Store) -> dict[str, int]:
    """Store-relative path -> size of every file in the store."""
    loc = store.location
    loc.fs.invalidate_cache()
    found = loc.fs.find(loc.root, detail=True)
    return {
        str(name)[len(loc.root) :].lstrip("/"): int(info["size"]) for name, info in found.items()
    }


def test_publish_writes_the_exact_layout(store_url: str, fixture_env: FixtureEnv) -> None:
    store = open_store(store_url)
    result = store.publish(fixture_env.manifest, fixture_env.blobs)
    env_id = fixture_env.manifest.env_id

    assert result.env_id == env_id
    assert result.env_uri == f"{store_url.rstrip('/')}/envs/{env_id}.json"
    assert [x.uploaded for x in result.layers] == [True, True]
    assert result.bytes_sent == sum(lay.size for lay in fixture_env.manifest.layers)
    assert result.manifest_written
    expected = {f"blobs/sha256/{lay.hex}.tar.gz": lay.size for lay in fixture_env.manifest.layers}
    expected[f"envs/{env_id}.json"] = len(canonical_json(fixture_env.manifest.hashed_dict()))
    found = files_in(store)
    provenance = found.pop(f"envs/{env_id}.provenance.json")
    assert provenance > 0
    assert found == expected  # nothing else: no temp files, no directories markers
    # The manifest is canonical JSON and hashes to the env id.
    raw = store.location.fs.cat_file(store.location.env_path(env_id))
    assert hashlib.sha256(raw).hexdigest() == env_id
    prov = json.loads(store.location.fs.cat_file(store.location.path(*provenance_key(env_id))))
    assert prov["env"] == env_id and prov["created"].endswith("Z") and prov["host"]


def test_second_publish_only_checks(store_url: str, fixture_env: FixtureEnv) -> None:
    store = open_store(store_url)
    store.publish(fixture_env.manifest, fixture_env.blobs)
    again = store.publish(fixture_env.manifest, fixture_env.blobs)
    assert [x.uploaded for x in again.layers] == [False, False]
    assert again.bytes_sent == 0
    assert not again.manifest_written


def test_code_edit_sends_only_the_code_layer(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    first = make_env(tmp_path / "a", code="VALUE = 1\n")
    second = make_env(tmp_path / "b", code="VALUE = 2\n")
    store.publish(first.manifest, first.blobs)
    result = store.publish(second.manifest, second.blobs)
    sent = {x.kind: x.uploaded for x in result.layers}
    assert sent == {"code": True, "deps": False}
    assert result.bytes_sent == second.manifest.layer("code").size  # type: ignore[union-attr]
    assert result.env_id != first.manifest.env_id
    assert sorted(store.env_ids()) == sorted([first.manifest.env_id, second.manifest.env_id])


def test_fetch_round_trip_and_manifest(store_url: str, fixture_env: FixtureEnv,
                                       tmp_path: Path) -> None:
    store = open_store(store_url)
    store.publish(fixture_env.manifest, fixture_env.blobs)
    assert store.read_manifest(fixture_env.manifest.env_id) == fixture_env.manifest
    for layer in fixture_env.manifest.layers:
        dest = store.fetch_blob(layer.digest, tmp_path / "fetched" / f"{layer.kind}.tar.gz")
        assert dest.read_bytes() == fixture_env.blobs[layer.digest].read_bytes()
    assert sorted(p.name for p in (tmp_path / "fetched").iterdir()) == [
        "code.tar.gz", "deps.tar.gz"
    ]


def test_corrupt_blob_fails_fetch_and_keeps_nothing(store_url: str, fixture_env: FixtureEnv,
                                                    tmp_path: Path) -> None:
    store = open_store(store_url)
    store.publish(fixture_env.manifest, fixture_env.blobs)
    layer = fixture_env.manifest.layers[0]
    path = store.location.blob_path(layer.digest)
    data = bytearray(store.location.fs.cat_file(path))
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    store.location.fs.pipe_file(path, bytes(data))
    dest_dir = tmp_path / "fetched"
    with pytest.raises(StoreError) as info:
        store.fetch_blob(layer.digest, dest_dir / "x.tar.gz")
    message = str(info.value)
    assert layer.digest in message and store.url in message and "corrupt" in message
    assert list(dest_dir.iterdir()) == []  # neither the file nor a temp file


def test_missing_blob_fetch_is_clear(store_url: str, fixture_env: FixtureEnv,
                                     tmp_path: Path) -> None:
    store = open_store(store_url)
    digest = "sha256:" + "0" * 64
    with pytest.raises(StoreError, match="not found in store"):
        store.fetch_blob(digest, tmp_path / "x.tar.gz")
    assert not (tmp_path / "x.tar.gz").exists()


def test_wrong_size_blob_in_store_is_replaced(store_url: str, fixture_env: FixtureEnv) -> None:
    store = open_store(store_url)
    layer = fixture_env.manifest.layers[1]
    if not store.location.object_store:
        store.location.fs.makedirs(store.location.path("blobs", "sha256"), exist_ok=True)
    store.location.fs.pipe_file(store.location.blob_path(layer.digest), b"truncated")
    result = store.publish(fixture_env.manifest, fixture_env.blobs)
    assert {x.kind: x.uploaded for x in result.layers}[layer.kind] is True
    assert files_in(store)[f"blobs/sha256/{layer.hex}.tar.gz"] == layer.size


def test_tampered_manifest_is_refused(store_url: str, fixture_env: FixtureEnv) -> None:
    store = open_store(store_url)
    env_id = store.publish(fixture_env.manifest, fixture_env.blobs).env_id
    path = store.location.env_path(env_id)
    data = json.loads(store.location.fs.cat_file(path))
    data["python"]["version"] = "3.12.0"
    store.location.fs.pipe_file(path, canonical_json(data))
    with pytest.raises(ManifestError, match="modified"):
        store.read_manifest(env_id)


def test_bad_local_blob_publishes_nothing(store_url: str, fixture_env: FixtureEnv) -> None:
    store = open_store(store_url)
    code = fixture_env.manifest.layer("code")
    assert code is not None
    blobs = dict(fixture_env.blobs)
    blobs[code.digest].write_bytes(b"changed after packing")
    with pytest.raises(StoreError):
        store.publish(fixture_env.manifest, blobs)
    found = files_in(store)
    assert not any(name.startswith("envs/") for name in found), found
    assert f"blobs/sha256/{code.hex}.tar.gz" not in found
    assert not any(".tmp-" in name for name in found), found

    del blobs[code.digest]
    with pytest.raises(StoreError, match="no local file for the code layer"):
        store.publish(fixture_env.manifest, blobs)


def test_progress_reports_every_byte(store_url: str, fixture_env: FixtureEnv) -> None:
    seen: dict[str, int] = {}

    def progress(digest: str, sent: int, size: int) -> None:
        seen[digest] = seen.get(digest, 0) + sent

    open_store(store_url).publish(fixture_env.manifest, fixture_env.blobs, progress)
    assert seen == {lay.digest: lay.size for lay in fixture_env.manifest.layers}


def test_local_store_links_blobs_instead_of_copying(tmp_path: Path,
                                                    fixture_env: FixtureEnv) -> None:
    """A local store on the same filesystem gets hard links to the (immutable, hashed) local
    blobs: nothing is written twice; the bytes and the result are those of a copy."""
    import os

    store = open_store(tmp_path / "store")
    result = store.publish(fixture_env.manifest, fixture_env.blobs)
    assert result.bytes_sent == sum(lay.size for lay in fixture_env.manifest.layers)
    for digest, local in fixture_env.blobs.items():
        stored = Path(store.location.blob_path(digest))
        assert os.path.samefile(stored, local)
    assert not [p for p in (tmp_path / "store").rglob("*") if ".tmp-" in p.name]
