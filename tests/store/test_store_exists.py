"""Which blobs a store holds, for envs of many blobs: one listing or parallel HEADs (on moto)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from envship.packing.manifest import Distribution, LayerRef, Manifest, PythonInfo
from envship.store import open_store
from envship.store.exists import existing_blobs
from envship.store.io import RetryPolicy, StoreIO
from kits.storekit import FixtureEnv, make_blob


def many_blob_env(root: Path, n: int, tag: str) -> FixtureEnv:
    """An env of *n* dist layers, one tiny real blob each (as a schema-2 pack makes)."""
    layers = []
    blobs = {}
    dists = []
    for i in range(n):
        path, digest, size = make_blob(root / f"{tag}-{i}.tar.gz",
                                       {f"site-packages/p{i}/__init__.py": f"{tag}{i}".encode()})
        layers.append(LayerRef("dist", digest, size, 1, dists=(f"p{i}==1",), bytecode="packed"))
        dists.append(Distribution(f"p{i}", "1", "index", digest))
        blobs[digest] = path
    manifest = Manifest(PythonInfo("cpython", "3.11.7", "cp311", "linux_x86_64", "cpython-311"),
                        tuple(layers), tuple(dists))
    return FixtureEnv(manifest, blobs)


@pytest.mark.s3
@pytest.mark.parametrize("mode", ["list", "head"])
def test_both_ways_find_exactly_the_stored_blobs(s3_url: str, tmp_path: Path, mode: str) -> None:
    store = open_store(s3_url)
    old = many_blob_env(tmp_path, 30, "old")
    store.publish(old.manifest, old.blobs)
    new = many_blob_env(tmp_path, 10, "new")
    layers = old.manifest.layers[:20] + new.manifest.layers
    policy = RetryPolicy()
    assert existing_blobs(StoreIO(store.location, policy), layers, mode=mode) == {
        lay.digest for lay in old.manifest.layers[:20]}
    # a wrong-size object is not "there": it gets replaced
    bad = old.manifest.layers[0]
    store.location.fs.pipe_file(store.location.blob_path(bad.digest), b"truncated")
    store.location.fs.invalidate_cache()
    assert bad.digest not in existing_blobs(StoreIO(store.location, policy), layers, mode=mode)


@pytest.mark.s3
def test_publish_after_one_new_dist_uploads_only_it(s3_url: str, tmp_path: Path) -> None:
    store = open_store(s3_url)
    a = many_blob_env(tmp_path, 40, "a")
    store.publish(a.manifest, a.blobs)
    extra = many_blob_env(tmp_path, 1, "extra")
    b = FixtureEnv(
        Manifest(a.manifest.python, a.manifest.layers + extra.manifest.layers,
                 a.manifest.distributions + (Distribution(
                     "extra", "1", "index", extra.manifest.layers[0].digest),)),
        {**a.blobs, **extra.blobs},
    )
    result = store.publish(b.manifest, b.blobs)
    assert [x.digest for x in result.layers if x.uploaded] == [extra.manifest.layers[0].digest]
    assert result.bytes_sent == extra.manifest.layers[0].size
    assert result.manifest_written


@pytest.mark.s3
def test_listing_vs_heads_timing(s3_url: str, tmp_path: Path) -> None:
    """Measure both ways for a 120-blob env on moto (printed with -s); both must agree."""
    store = open_store(s3_url)
    env = many_blob_env(tmp_path, 120, "t")
    store.publish(env.manifest, env.blobs)
    policy = RetryPolicy()
    got = {}
    for mode in ("list", "head", "list", "head"):
        start = time.perf_counter()
        found = existing_blobs(StoreIO(store.location, policy), env.manifest.layers, mode=mode)
        got[mode] = time.perf_counter() - start
        assert len(found) == 120
    print(f"\n120 blobs on moto: listing {got['list'] * 1000:.0f} ms, "
          f"parallel HEADs {got['head'] * 1000:.0f} ms")


def test_local_store_lists_and_env_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path / "store")
    env = many_blob_env(tmp_path, 3, "local")
    assert existing_blobs(StoreIO(store.location, RetryPolicy()), env.manifest.layers) == set()
    store.publish(env.manifest, env.blobs)
    want = {lay.digest for lay in env.manifest.layers}
    assert existing_blobs(StoreIO(store.location, RetryPolicy()), env.manifest.layers) == want
    monkeypatch.setenv("ENVSHIP_STORE_EXISTS", "head")
    assert existing_blobs(StoreIO(store.location, RetryPolicy()), env.manifest.layers) == want
