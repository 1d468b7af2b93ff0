"""`envship store verify`: damage found, reported, repaired from the build cache."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from envship.store import open_store
from kits.clikit import envship
from kits.storekit import make_env


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`envship ARGS` (in this process) with *home* as ENVSHIP_HOME."""
    return envship(*args, env={"ENVSHIP_HOME": str(home)})


def test_verify_finds_each_kind_of_damage(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    env = make_env(tmp_path / "e")
    env_id = store.publish(env.manifest, env.blobs).env_id
    store.set_tag("prod", env_id)
    assert store.verify(deep=True).damage == ()
    fs, loc = store.location.fs, store.location
    code, deps = env.manifest.layer("code"), env.manifest.layer("deps")
    assert code is not None and deps is not None
    fs.rm_file(loc.blob_path(code.digest))
    data = bytearray(fs.cat_file(loc.blob_path(deps.digest)))
    data[-1] ^= 0xFF
    fs.pipe_file(loc.blob_path(deps.digest), bytes(data))  # same size, other bytes
    fs.pipe_file(loc.tag_path("ghost"), json.dumps({"env": "f" * 64}).encode())
    shallow = store.verify()
    assert [(d.kind, d.digest) for d in shallow.damage] == [("missing-blob", code.digest),
                                                           ("dangling-tag", None)]
    assert not shallow.ok
    deep = store.verify(deep=True)
    assert sorted(d.kind for d in deep.damage) == ["corrupt-blob", "dangling-tag",
                                                   "missing-blob"]


def test_repair_from_the_build_cache_and_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = str(tmp_path / "store")
    store = open_store(url)
    env = make_env(tmp_path / "e")
    store.publish(env.manifest, env.blobs)
    code = env.manifest.layer("code")
    assert code is not None
    Path(store.location.blob_path(code.digest)).unlink()

    bad = cli("store", "verify", url, "--json", home=home)
    assert bad.returncode == 1, bad.stderr
    report = json.loads(bad.stdout)
    assert not report["ok"] and [d["kind"] for d in report["damage"]] == ["missing-blob"]
    # Not in the build cache: --repair cannot help and says so.
    still = cli("store", "verify", url, "--repair", home=home)
    assert still.returncode == 1 and "no local copy" in still.stdout
    # The build cache holds it: re-uploaded, and the store verifies clean.
    cache = home / "build-cache" / "blobs" / "sha256"
    cache.mkdir(parents=True)
    shutil.copy(env.blobs[code.digest], cache / f"{code.hex}.tar.gz")
    fixed = cli("store", "verify", url, "--repair", home=home)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repaired" in fixed.stdout
    ok = cli("store", "verify", url, "--deep", home=home)
    assert ok.returncode == 0 and "ok" in ok.stdout, ok.stdout


def test_unreadable_manifest_is_damage(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    env = make_env(tmp_path / "e")
    env_id = store.publish(env.manifest, env.blobs).env_id
    Path(store.location.env_path(env_id)).write_text("{broken")
    (damage,) = store.verify().damage
    assert damage.kind == "bad-manifest" and damage.env_id == env_id
