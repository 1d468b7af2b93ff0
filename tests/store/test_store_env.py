"""`Env` handles and presigned manifests."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from envship.env import Env, locate_env, split_env_uri
from envship.errors import StoreError
from envship.node.formats import presigned_key
from envship.packing.manifest import Manifest
from envship.store import open_store
from kits.storekit import FixtureEnv, make_env


def test_env_open_by_env_and_tag_uri(store_url: str, fixture_env: FixtureEnv) -> None:
    store = open_store(store_url)
    result = store.publish(fixture_env.manifest, fixture_env.blobs)
    store.set_tag("prod", result.env_id)

    env = Env.open(result.env_uri)
    assert env.uri == result.env_uri and env.env_id == result.env_id
    assert env.manifest == fixture_env.manifest and env.store_url == store.url
    tagged = Env.open(store.tag_uri("prod"))
    assert tagged.env_id == result.env_id and tagged.uri == result.env_uri


def test_env_open_rejects_non_env_uris(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not an env reference"):
        Env.open(str(tmp_path / "store"))
    with pytest.raises(StoreError, match="not found"):
        Env.open(str(tmp_path / "store" / "envs" / ("a" * 64 + ".json")))
    assert split_env_uri("s3://b/p/tags/prod.json") == ("s3://b/p", "tag", "prod")


def test_locate_env_tells_a_store_from_an_env(tmp_path: Path, fixture_env: FixtureEnv) -> None:
    store = open_store(tmp_path / "store")
    first = store.publish(fixture_env.manifest, fixture_env.blobs).env_id
    store.set_tag("prod", first)
    located = {ref: locate_env(ref)[1] for ref in (
        store.env_uri(first), store.tag_uri("prod"), str(tmp_path / "store"))}
    assert located == dict.fromkeys(located, first)  # a store holding one env means that one
    other = make_env(tmp_path / "other", code="VALUE = 2\n")
    second = store.publish(other.manifest, other.blobs).env_id
    with pytest.raises(StoreError, match="holds 2 envs: give an env URI"):
        locate_env(str(tmp_path / "store"))
    found, env_id = locate_env(str(tmp_path / "store"), second[:10])
    assert env_id == second and found.url == store.url
    assert locate_env(str(tmp_path / "store"), "prod")[1] == first
    with pytest.raises(StoreError):  # a mistyped store path is an error, not "holds 0 envs"
        locate_env(str(tmp_path / "no-such-store"))


def test_env_repr_has_no_storage_options(fixture_env: FixtureEnv) -> None:
    env = Env("memory://x/envs/a.json", fixture_env.manifest, "memory://x",
              {"secret": "do-not-print-me"})
    assert "do-not-print-me" not in repr(env)


def test_presign_local_store_is_a_clear_error(tmp_path: Path, fixture_env: FixtureEnv) -> None:
    store = open_store(tmp_path / "store")
    env_id = store.publish(fixture_env.manifest, fixture_env.blobs).env_id
    with pytest.raises(StoreError, match="cannot make presigned URLs"):
        Env.open(store.env_uri(env_id)).presigned()


@pytest.mark.s3
def test_presigned_env_downloads_without_credentials(
    s3_url: str, fixture_env: FixtureEnv, tmp_path: Path
) -> None:
    store = open_store(s3_url)
    result = store.publish(fixture_env.manifest, fixture_env.blobs)
    env = Env.open(result.env_uri).presigned(expires=600)

    assert env.env_id == result.env_id  # urls are not part of the env id
    assert env.is_presigned and env.uri.startswith("http")
    # The presigned manifest sits next to the manifest in the store ...
    side = store.location.path(*presigned_key(result.env_id))
    assert Manifest.from_json(store.location.fs.cat_file(side), presigned=True) == env.manifest
    # ... and plain urllib (no credentials, no s3fs) gets it and every layer, bit for bit.
    with urllib.request.urlopen(env.uri, timeout=30) as resp:
        fetched = Manifest.from_json(resp.read(), presigned=True)
    assert fetched.env_id == result.env_id
    for layer in fetched.layers:
        assert layer.url is not None
        with urllib.request.urlopen(layer.url, timeout=30) as resp:
            data = resp.read()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer.digest

    out = tmp_path / "p" / f"{result.env_id}.presigned.json"  # the name nodes know it by
    written = store.presign(result.env_id, expires=60, output=out)
    assert written.url == str(out)
    assert json.loads(out.read_text())["layers"][0]["url"].startswith("http")
    again = store.presign(result.env_id, expires=60, output=tmp_path / "p")  # a directory
    assert again.url == str(out)


def test_node_failures_reach_library_callers_as_envship_errors(
    tmp_path: Path, fixture_env: FixtureEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrupt blob stops Env.run / Env.map / a local Spark conf with an EnvshipError (the
    node runtime's own NodeError), before anything runs."""
    import envship
    from envship.engines.spark.conf import conf
    from envship.errors import EngineError

    store = open_store(str(tmp_path / "store"))
    env = Env.open(store.publish(fixture_env.manifest, fixture_env.blobs).env_uri)
    blob = next((tmp_path / "store" / "blobs" / "sha256").glob("*.tar.gz"))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-8] + b"\0" * 8)
    monkeypatch.setenv("ENVSHIP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(envship.EnvshipError, match="sha256") as info:
        env.run(print, "never")
    assert isinstance(info.value, envship.NodeError)
    with pytest.raises(envship.EnvshipError, match="sha256"):
        env.map(abs, [1, 2])
    with pytest.raises(EngineError, match="cannot prepare env"):
        conf(env, master="local[2]")
