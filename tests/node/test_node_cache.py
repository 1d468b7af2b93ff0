"""Node cache under concurrency and crashes; LRU prune that spares envs in use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kits.nodekit import (
    ENVSHIP,
    Store,
    blob_from_members,
    file_member,
    make_manifest,
    node_env,
    write_store,
)


def _leftovers(cache: Path) -> list[str]:
    return [
        f"{sub}/{n}"
        for sub in ("layers", "envs")
        if (cache / sub).is_dir()
        for n in os.listdir(cache / sub)
        if n.startswith(".")
    ]


def test_32_concurrent_processes_download_each_layer_once(
    numpy_store: Store, tmp_path: Path, serve: object
) -> None:
    server = serve(numpy_store.root)  # type: ignore[operator]
    uri = f"{server.url}/envs/{numpy_store.env_id}.json"
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [ENVSHIP, "exec", "--cache", str(cache), uri, "--", "python", "-c",
             f"import tinylib, os; print({i} + 2, os.environ['ENVSHIP_ENV_ID'])"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node_env(),
        )
        for i in range(32)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for i, (p, (out, err)) in enumerate(zip(procs, results, strict=True)):
        assert p.returncode == 0, err
        assert out.split() == [str(i + 2), numpy_store.env_id]
    for blob in numpy_store.blobs:
        assert server.counts[f"/blobs/sha256/{blob.hex}.tar.gz"] == 1, server.counts
    assert sorted(os.listdir(cache / "layers")) == sorted(b.hex for b in numpy_store.blobs)
    assert os.listdir(cache / "envs") == [numpy_store.env_id]
    assert _leftovers(cache) == []


def test_kill_9_during_unpack_leaves_nothing_usable(
    numpy_store: Store, tmp_path: Path, serve: Any
) -> None:
    cache = tmp_path / "cache"
    # A slow store (~1 MB/s): the unpack of the numpy layer, streamed from it, runs for seconds.
    server = serve(numpy_store.root, trickle=(64 << 10, 0.05))
    uri = f"{server.url}/envs/{numpy_store.env_id}.json"
    args = [ENVSHIP, "exec", "--cache", str(cache), uri, "--", "tiny"]
    proc = subprocess.Popen(args, env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the unpack has started writing files
        tmp = [n for n in _leftovers(cache) if n.startswith("layers/.tmp-")]
        if tmp and any((cache / tmp[0]).rglob("*.py")):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("unpack never started")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # the half layer is not committed: no layers/<hex> for it, no view
    committed = [n for n in os.listdir(cache / "layers") if not n.startswith(".")]
    big = max(numpy_store.blobs, key=lambda b: len(b.data))
    assert big.hex not in committed
    views = os.listdir(cache / "envs") if (cache / "envs").exists() else []
    assert [n for n in views if not n.startswith(".")] == []
    assert _leftovers(cache)
    (cache / "envs").mkdir(exist_ok=True)
    (cache / "envs" / ".tmp-cafe-99").mkdir()  # another crashed builder, of another env
    again = subprocess.run(args, capture_output=True, text=True, env=node_env(), timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "tiny says hi"
    assert _leftovers(cache) == []  # the next cold run cleaned the crashed builders' temp dirs
    server.close()  # a cache hit reads nothing from the store
    hit = subprocess.run(args, capture_output=True, text=True, env=node_env(), timeout=60)
    assert hit.returncode == 0 and hit.stdout.strip() == "tiny says hi", hit.stderr
    # and a crash leftover for a layer nobody builds is removed by prune
    (cache / "layers" / ".tmp-deadbeef-1").mkdir()
    pruned = subprocess.run(
        [ENVSHIP, "cache", "prune", "--cache", str(cache)], capture_output=True, text=True
    )
    assert pruned.returncode == 0, pruned.stderr
    assert _leftovers(cache) == []


def test_prune_is_lru_and_spares_envs_in_use(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stores = []
    for name in ("one", "two", "three"):
        blob = blob_from_members(
            "deps", [file_member(f"site-packages/{name}.py", name.encode() * 1000)]
        )
        m = make_manifest([blob])
        stores.append((write_store(tmp_path / name, m, [blob]), m.env_id, blob.hex))
    for uri, _, _ in stores:
        out = subprocess.run(
            [ENVSHIP, "exec", "--cache", str(cache), str(uri), "--", "true"], env=node_env()
        )
        assert out.returncode == 0
        time.sleep(0.05)
    # env "one" is in use by a running process; "two" is least recently used after it
    holder = subprocess.Popen(
        [ENVSHIP, "exec", "--cache", str(cache), str(stores[0][0]), "--", "sleep", "60"],
        env=node_env(),
    )
    try:
        time.sleep(1.0)
        listing = json.loads(
            subprocess.run(
                [ENVSHIP, "cache", "ls", "--json", "--cache", str(cache)],
                capture_output=True, text=True, check=True,
            ).stdout
        )
        in_use = {e["name"] for e in listing if e["in_use"]}
        assert stores[0][1] in in_use and stores[0][2] in in_use
        assert stores[1][1] not in in_use
        out = subprocess.run(
            [ENVSHIP, "cache", "prune", "--all", "--cache", str(cache)],
            capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stderr
        assert "removed 2 layers and 2 env views" in out.stdout
        assert os.listdir(cache / "layers") == [stores[0][2]]
        assert os.listdir(cache / "envs") == [stores[0][1]]
    finally:
        holder.kill()
        holder.wait()
    # not in use any more: now it goes too
    subprocess.run(
        [ENVSHIP, "cache", "prune", "--all", "--cache", str(cache)], check=True,
        capture_output=True,
    )
    assert os.listdir(cache / "layers") == []


def test_lru_order_and_auto_prune(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    uris = []
    for name in ("old", "new"):
        blob = blob_from_members("deps", [file_member(f"site-packages/{name}.py", b"x" * 3000)])
        m = make_manifest([blob])
        uris.append(write_store(tmp_path / name, m, [blob]))
    env = node_env(ENVSHIP_CACHE_MAX="4K")
    for uri in uris:
        subprocess.run(
            [ENVSHIP, "exec", "--cache", str(cache), str(uri), "--", "true"], env=env, check=True
        )
        time.sleep(0.05)
    # 2 x 3000 bytes > 4K: the automatic prune after fetching "new" evicted "old"
    views = os.listdir(cache / "envs")
    assert len(views) == 1 and (tmp_path / "new" / "envs" / f"{views[0]}.json").exists()


def test_auto_prune_keeps_the_env_it_just_built(tmp_path: Path) -> None:
    """A cache limit below one env's size: the env built for this run is not pruned before it
    runs (it used to be, and exec failed with "keeps disappearing")."""
    cache = tmp_path / "cache"
    blob = blob_from_members("deps", [file_member("site-packages/big.py", b"#" * 3000)])
    uri = write_store(tmp_path / "store", make_manifest([blob]), [blob])
    proc = subprocess.run(
        [ENVSHIP, "exec", "--cache", str(cache), str(uri), "--", "python", "-c",
         "import big, sys; print(sys.prefix)"],
        env=node_env(ENVSHIP_CACHE_MAX="1K"), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(cache / "envs"))
    assert len(os.listdir(cache / "layers")) == 1


def test_an_unwritable_cache_falls_back_loudly_and_prune_reaches_the_fallback(
    tmp_path: Path,
) -> None:
    """A cache that cannot be created: the env runs from $TMPDIR/envship-<uid> with one warning
    line (it used to be silent), `cache ls` shows it there and `cache prune --all` removes it,
    so the next run builds it again (docs/node.md: prune --all stops an env on a node)."""
    blob = blob_from_members("deps", [file_member("site-packages/mod.py", b"X = 1\n")])
    uri = write_store(tmp_path / "store", make_manifest([blob]), [blob])
    bad = Path("/proc/envship-cache")  # not even root can create it (a path under a regular
    # file would fail the ownership rule instead: that fallback has its own warning)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = node_env(TMPDIR=str(tmp))
    area = tmp / f"envship-{os.getuid()}"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ENVSHIP, "exec", "--cache", str(bad), str(uri), "--", "python", "-c",
             "import mod, sys; print(sys.prefix)"], env=env, capture_output=True, text=True)

    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(area / "envs")), proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and str(area) in warnings[0] and "ENVSHIP_CACHE" in warnings[0]
    listed = subprocess.run([ENVSHIP, "cache", "ls", "--cache", str(bad), "--json"], env=env,
                            capture_output=True, text=True, check=True)
    paths = sorted(e["path"] for e in json.loads(listed.stdout))
    assert len(paths) == 2 and all(p.startswith(str(area)) for p in paths), paths
    pruned = subprocess.run([ENVSHIP, "cache", "prune", "--all", "--cache", str(bad)], env=env,
                            capture_output=True, text=True, check=True)
    assert "removed 1 layer and 1 env view," in pruned.stdout, pruned.stdout
    assert os.listdir(area / "envs") == [] and os.listdir(area / "layers") == []
    again = run()  # built again: the warning again, the view back
    assert again.returncode == 0 and "warning:" in again.stderr, again.stderr


def test_prune_cache_refuses_limits_that_would_empty_it(tmp_path: Path) -> None:
    """-1 (a "-1G" read by hand) or NaN must not mean "remove everything"; 0 does, on
    purpose (`cache prune --all`)."""
    from envship.node import NodeError, prune_cache

    blob = blob_from_members("deps", [file_member("site-packages/m.py", b"X = 1\n")])
    uri = write_store(tmp_path / "store", make_manifest([blob]), [blob])
    cache = tmp_path / "cache"
    subprocess.run([ENVSHIP, "exec", "--cache", str(cache), str(uri), "--", "true"],
                   env=node_env(), check=True)
    for bad in (-1, float("nan"), "20G"):
        with pytest.raises(NodeError, match="give a number of bytes"):
            prune_cache(str(cache), bad)  # type: ignore[arg-type]
    assert len(os.listdir(cache / "layers")) == 1
    assert len(prune_cache(str(cache), 0) or []) == 2
