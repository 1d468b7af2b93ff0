"""The team build cache: a second machine (empty build cache) shipping an env whose packages
the store already holds builds, compiles and uploads none of them, and gets the same env id."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from envship.node import formats
from envship.shipping import ship_result
from envship.store import open_store
from kits.support import SampleEnv


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _entries(store: Path) -> dict[str, dict[str, object]]:
    folder = store.joinpath(*formats.FINGERPRINTS)
    return {p.stem: json.loads(p.read_bytes()) for p in folder.glob("*.json")}


@pytest.fixture
def first(sample_env: SampleEnv, tmp_path: Path) -> tuple[Path, str]:
    """Machine A ships the sample env; (store, env id)."""
    store = tmp_path / "store"
    result = ship_result(str(store), python=str(sample_env.python),
                         cache_dir=tmp_path / "cache-a")
    return store, result.env.env_id


def test_second_machine_reuses_the_stores_blobs(
    first: tuple[Path, str], sample_env: SampleEnv, tmp_path: Path
) -> None:
    store, env_id = first
    mapped = _entries(store)
    manifest = open_store(str(store)).read_manifest(env_id)
    shared = [lay for lay in manifest.layers if lay.kind in ("python", "conda", "dist")]
    assert shared and {e["digest"] for e in mapped.values()} == {lay.digest for lay in shared}
    before = _tree_bytes(store)

    cache_b = tmp_path / "cache-b"
    again = ship_result(str(store), python=str(sample_env.python), cache_dir=cache_b)
    assert again.env.env_id == env_id
    assert again.publish.bytes_sent == 0
    for lay in shared:  # taken from the store, not built: nothing compiled or archived here
        assert again.built[lay.digest] is False
        assert not cache_b.joinpath(*formats.blob_key(lay.digest)).exists()
    # only the code layers (the user's own projects: kilobytes, never shared) were built here
    built = {d for d, now in again.built.items() if now}
    assert built == {lay.digest for lay in manifest.layers if lay.kind == "code"}
    assert len(list(cache_b.rglob("*.pyc"))) < 10  # numpy's hundreds of modules: not compiled
    grown = _tree_bytes(store) - before
    assert grown <= 64 * 1024, grown  # provenance and a lease at most, no blob


def test_no_store_cache_builds_everything(
    first: tuple[Path, str], sample_env: SampleEnv, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, env_id = first
    for how in ({"store_cache": False}, {}):
        if not how:
            monkeypatch.setenv("ENVSHIP_NO_STORE_CACHE", "1")
        cache = tmp_path / f"cache-{len(how)}"
        result = ship_result(str(store), python=str(sample_env.python), cache_dir=cache, **how)
        assert result.env.env_id == env_id
        assert all(result.built.values())  # every layer archived here, identical bytes


def test_a_mapping_whose_blob_is_gone_is_ignored(
    first: tuple[Path, str], sample_env: SampleEnv, tmp_path: Path
) -> None:
    store, env_id = first
    manifest = open_store(str(store)).read_manifest(env_id)
    victim = next(lay for lay in manifest.layers if lay.kind == "dist")
    store.joinpath(*formats.blob_key(victim.digest)).unlink()
    bogus = store.joinpath(*formats.fingerprint_key("f" * 64))
    bogus.write_bytes(b"[" * 100_000)  # hostile entries are ignored too
    result = ship_result(str(store), python=str(sample_env.python),
                         cache_dir=tmp_path / "cache-c")
    assert result.env.env_id == env_id
    assert result.built[victim.digest] is True  # built here, and uploaded again
    uploaded = {lay.digest for lay in result.publish.layers if lay.uploaded}
    assert uploaded == {victim.digest}
    assert store.joinpath(*formats.blob_key(victim.digest)).is_file()


def test_gc_forgets_the_mappings_of_the_blobs_it_deletes(
    first: tuple[Path, str], tmp_path: Path
) -> None:
    store, env_id = first
    assert _entries(store)
    handle = open_store(str(store))
    os.unlink(store.joinpath(*formats.env_key(env_id)))  # the env is gone: its blobs are garbage
    result = handle.gc(grace=0)
    assert result.blobs_removed
    assert _entries(store) == {}


def test_a_warm_machine_shipping_to_a_new_store_fills_its_team_cache(
    first: tuple[Path, str], sample_env: SampleEnv, tmp_path: Path
) -> None:
    """Machine A built the layers shipping to one store; shipping (warm) to a second store,
    or to one a gc emptied, must map them there too, or a colleague rebuilds everything."""
    store, env_id = first
    manifest = open_store(str(store)).read_manifest(env_id)
    shared = {lay.digest for lay in manifest.layers if lay.kind in ("python", "conda", "dist")}
    other = tmp_path / "other-store"
    warm = ship_result(str(other), python=str(sample_env.python), cache_dir=tmp_path / "cache-a")
    assert not any(warm.built.values())  # all from A's build cache
    assert {e["digest"] for e in _entries(other).values()} == shared
    fresh = ship_result(str(other), python=str(sample_env.python),
                        cache_dir=tmp_path / "cache-d")
    assert all(fresh.built[d] is False for d in shared)  # from the store, not rebuilt
