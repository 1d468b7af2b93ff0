"""Schema-2 envs (one blob per distribution) from real wheels installed by uv, run from merged
views: namespace packages, .pth files, scripts, metadata, $ORIGIN RPATHs, shared-blob prune."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from envship.node import NodeError, prepare
from kits.mergedkit import Envs
from kits.nodekit import ENVSHIP, make_manifest2, node_env, write_store
from kits.support import SampleEnv

MM = "{}.{}".format(*sys.version_info[:2])
TAG = sys.implementation.cache_tag

CHECK = """\
import importlib.metadata as md, os, sys, sysconfig
import nspkg.a, nspkg.b, rpathext, tinylib, pthmod, pthextra_mod
site = sysconfig.get_paths()["purelib"]
print(os.environ.get("PTHDIST_RAN"), nspkg.a.DATA, nspkg.b.SIBLING, rpathext.value(), pthmod.FLAG)
print(",".join(sorted(d.metadata["Name"] for d in md.distributions())))
mods = (nspkg.a, nspkg.b, rpathext, tinylib, pthmod, pthextra_mod)
print(all(m.__file__.startswith(site + os.sep) for m in mods), len(nspkg.__path__))
print(sys.prefix)
"""


@pytest.fixture
def envs(merged_envs: Envs) -> Envs:
    return merged_envs


def _uri(envs: Envs, env_id: str) -> str:
    return str(envs.root / "envs" / f"{env_id}.json")


def _exec(cache: Path, ref: str, *cmd: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENVSHIP, "exec", "--cache", str(cache), ref, "--", *cmd],
        capture_output=True, text=True, env=node_env(**env), timeout=300,
    )


def _snapshot(tree: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for d, dirs, files in os.walk(tree):
        for n in dirs + files:
            st = os.lstat(os.path.join(d, n))
            rel = os.path.relpath(os.path.join(d, n), tree)
            out[rel] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def test_merged_view_behaves_like_the_venv(envs: Envs, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = _exec(cache, _uri(envs, envs.a), "python", "-c", CHECK)
    assert proc.returncode == 0, proc.stderr
    first, names, where, prefix = proc.stdout.splitlines()
    # .pth import hook, __file__-relative data, cross-dist relative path, $ORIGIN RPATH, code .pth
    assert first == "pth-ran a-data b-sees-a-data 42 pth ok"
    assert names == "ns-a,ns-b,pthdist,rpathext,rpathlib,tinylib"
    assert where == "True 1"  # every module in the ONE site-packages; one namespace path entry
    view = cache / "envs" / envs.a
    assert Path(prefix) == view
    site = view / "lib" / f"python{MM}" / "site-packages"
    assert not (site / "_envship.pth").exists()
    # hard links into the layers, read-only
    init = site / "nspkg" / "a" / "__init__.py"
    layer = cache / "layers" / envs.blobs["ns-a"].hex / "site-packages" / "nspkg" / "a"
    assert os.stat(init).st_ino == os.stat(layer / "__init__.py").st_ino
    assert os.stat(init).st_mode & 0o777 == 0o444
    assert not (site / "nspkg").is_symlink() and (site / "nspkg" / "a").is_dir()
    layers_file = (view / "envship-layers").read_text().split()
    assert sorted(layers_file) == sorted(b.hex for n, b in envs.blobs.items() if n != "solo")
    # console scripts (from the manifest) and scripts the wheels installed (data/bin)
    proc = _exec(cache, _uri(envs, envs.a), "sh", "-c",
                 "ns-a-hello && ns-b-tool && tiny && tiny-data-script")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "ns-a hello a-data", "ns-b tool b-sees-a-data", "tiny says hi", "data-script-ran"]


def test_node_compiles_bytecode_node_layers_before_commit(envs: Envs, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [ENVSHIP, "exec", "-v", "--cache", str(cache), _uri(envs, envs.a), "--", "true"],
        capture_output=True, text=True, env=node_env(), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "compiled 1 modules" in proc.stderr, proc.stderr
    pyc = (cache / "layers" / envs.blobs["ns-b"].hex / "site-packages" / "nspkg" / "b"
           / "__pycache__" / f"__init__.{TAG}.pyc")
    head = pyc.read_bytes()[:8]
    assert struct.unpack("<I", head[4:8])[0] == 0b01  # PEP 552: hash-based, unchecked
    assert pyc.stat().st_mode & 0o777 == 0o444
    # the packed layers were not recompiled: no new pycs beside the packed ones
    packed = cache / "layers" / envs.blobs["ns-a"].hex / "site-packages" / "nspkg" / "a"
    assert sorted(p.name for p in (packed / "__pycache__").iterdir()) == [f"__init__.{TAG}.pyc"]


def test_running_code_never_writes_under_layers(envs: Envs, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _exec(cache, _uri(envs, envs.a), "true").returncode == 0
    before = _snapshot(cache / "layers")
    env = node_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    code = (
        "import os, nspkg.a, tinylib, pthmod\n"
        "open(os.path.join(os.path.dirname(nspkg.a.__file__), 'cache.txt'), 'w').write('x')\n"
        "print(pthmod.__cached__)\n"
    )
    proc = subprocess.run(
        [ENVSHIP, "exec", "--cache", str(cache), _uri(envs, envs.a), "--", "python", "-c", code],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    view = cache / "envs" / envs.a
    site = view / "lib" / f"python{MM}" / "site-packages"
    written = Path(proc.stdout.strip())
    assert written.is_relative_to(site) and written.exists()  # the .pyc Python wrote
    assert (site / "nspkg" / "a" / "cache.txt").read_text() == "x"
    assert _snapshot(cache / "layers") == before


def test_32_concurrent_starts_fetch_each_blob_once(
    envs: Envs, tmp_path: Path, serve: object
) -> None:
    server = serve(envs.root)  # type: ignore[operator]
    uri = f"{server.url}/envs/{envs.a}.json"
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [ENVSHIP, "exec", "--cache", str(cache), uri, "--", "python", "-c",
             f"import rpathext, nspkg.b; print({i}, rpathext.value())"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node_env(),
        )
        for i in range(32)
    ]
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert out.split() == [str(i), "42"]
    blobs = [b for n, b in envs.blobs.items() if n != "solo"]
    for blob in blobs:
        assert server.counts[f"/blobs/sha256/{blob.hex}.tar.gz"] == 1, server.counts
    assert sorted(os.listdir(cache / "layers")) == sorted(b.hex for b in blobs)
    assert os.listdir(cache / "envs") == [envs.a]


def test_new_combination_fetches_only_its_new_blob(
    envs: Envs, tmp_path: Path, serve: object
) -> None:
    server = serve(envs.root)  # type: ignore[operator]
    cache = tmp_path / "cache"
    prepare(f"{server.url}/envs/{envs.a}.json", cache_dir=cache)
    started = time.monotonic()
    view = prepare(f"{server.url}/envs/{envs.b}.json", cache_dir=cache)
    took = time.monotonic() - started
    fetched = [p for p, n in server.counts.items() if p.startswith("/blobs/") for _ in range(n)]
    assert len(fetched) == len(envs.blobs) - 1 + 1  # A's 6 blobs, then B's one new blob
    assert server.counts[f"/blobs/sha256/{envs.solo.hex}.tar.gz"] == 1
    out = subprocess.run([view.python, "-c", "import solo, rpathext; print(solo.WHO)"],
                         capture_output=True, text=True, env=view.environ())
    assert out.stdout.strip() == "solo", out.stderr
    assert took < 5.0


def test_prune_keeps_blobs_shared_with_a_view_in_use(envs: Envs, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _exec(cache, _uri(envs, envs.b), "true").returncode == 0
    time.sleep(0.05)
    holder = subprocess.Popen(
        [ENVSHIP, "exec", "--cache", str(cache), _uri(envs, envs.a), "--", "python", "-c",
         "import sys, time, rpathext; print('up', flush=True); time.sleep(60); "
         "import nspkg.b; print(rpathext.value(), nspkg.b.SIBLING)"],
        stdout=subprocess.PIPE, text=True, env=node_env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        listing = json.loads(subprocess.run(
            [ENVSHIP, "cache", "ls", "--json", "--cache", str(cache)],
            capture_output=True, text=True, check=True,
        ).stdout)
        in_use = {e["name"] for e in listing if e["in_use"]}
        assert envs.a in in_use and envs.b not in in_use
        assert envs.solo.hex not in in_use and envs.blobs["rpathlib"].hex in in_use
        out = subprocess.run(
            [ENVSHIP, "cache", "prune", "--all", "--cache", str(cache)],
            capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stderr
        assert "removed 1 layer and 1 env view," in out.stdout, out.stdout
        a_hexes = sorted(b.hex for n, b in envs.blobs.items() if n != "solo")
        assert sorted(os.listdir(cache / "layers")) == a_hexes
        assert os.listdir(cache / "envs") == [envs.a]
    finally:
        holder.kill()
        holder.wait()
    # the view in use still runs, and B comes back fetching only what it lost
    proc = _exec(cache, _uri(envs, envs.a), "python", "-c",
                 "import rpathext; print(rpathext.value())")
    assert proc.stdout.strip() == "42", proc.stderr
    proc = _exec(cache, _uri(envs, envs.b), "python", "-c", "import solo; print(solo.WHO)")
    assert proc.stdout.strip() == "solo", proc.stderr


def _write_raw(root: Path, data: dict[str, object]) -> str:
    from kits.nodekit import Manifest2

    m = Manifest2(data)
    (root / "envs").mkdir(parents=True, exist_ok=True)
    path = root / "envs" / f"{m.env_id}.json"
    path.write_bytes(m.to_json())
    return str(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["python"].pop("cache_tag"), "bad 'python' field"),
        (lambda m: m["layers"][1].pop("dists"), "'dists' is not a list of 'name==version'"),
        (lambda m: m["layers"][1].update(dists=[]), "empty only for a code layer"),
        (lambda m: m["layers"][1].update(dists=["nover"]), "'name==version'"),
        (lambda m: m["layers"][1].update(bytecode="maybe"), "'bytecode' is not one of"),
        (lambda m: m["layers"][1].update(kind="deps"), "kind is not one of python, code, dist"),
        (lambda m: m["layers"].reverse(), "layers out of order"),
        (lambda m: m["layers"].append(dict(m["layers"][1])), "the same digest twice"),
        (lambda m: m["distributions"][0].update(layer="sha256:" + "0" * 64), "names no layer"),
        (lambda m: m.update(schema="envship.manifest/9"), "unknown manifest schema"),
    ],
)
def test_bad_schema_2_manifests_are_refused(
    envs: Envs, tmp_path: Path, change: object, message: str
) -> None:
    data = json.loads((envs.root / "envs" / f"{envs.a}.json").read_text())
    change(data)  # type: ignore[operator]
    uri = _write_raw(tmp_path / "store", data)
    with pytest.raises(NodeError, match=message):
        prepare(uri, cache_dir=tmp_path / "cache")


def test_two_layers_claiming_one_file_is_a_clear_error(tmp_path: Path) -> None:
    from kits.nodekit import blob_from_members, file_member

    one = replace(blob_from_members("dist", [file_member("site-packages/same.py", b"1")]),
                  dists=("one==1",), bytecode="none")
    two = replace(blob_from_members("dist", [file_member("site-packages/same.py", b"2")]),
                  dists=("two==1",), bytecode="none")
    m = make_manifest2([one, two])
    uri = write_store(tmp_path / "store", m, [one, two])
    with pytest.raises(NodeError, match=r"both contain .*same\.py"):
        prepare(str(uri), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "envs" / m.env_id).exists()


def test_python_layer_env_is_compiled_once_and_layers_stay_untouched(
    envs: Envs, sample_env: SampleEnv, tmp_path: Path
) -> None:
    """A schema-2 env with a `python` layer: the layer's stdlib and the "bytecode": "node"
    layer are compiled at unpack by the shipped interpreter; no node Python is needed and
    running code (bytecode writing on) writes nothing under layers/."""
    from envship import pack
    from kits.nodekit import Blob

    packed = pack(sample_env.venv, with_python=True, output=tmp_path / "out",
                  cache_dir=tmp_path / "build-cache")
    ref = packed.manifest.layer("python")
    assert ref is not None
    python = Blob("python", ref.digest, Path(packed.blobs[ref.digest]).read_bytes(), ref.files)
    blobs = [python, *(b for n, b in envs.blobs.items() if n != "solo")]
    manifest = make_manifest2(blobs)
    uri = str(write_store(tmp_path / "store", manifest, blobs))
    cache = tmp_path / "cache"
    env = node_env(ENVSHIP_PYTHON="/nonexistent/python3")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    first = subprocess.run(
        [ENVSHIP, "exec", "-v", "--cache", str(cache), uri, "--", "python", "-c",
         "import sys, rpathext, nspkg.b; print(sys.base_prefix, rpathext.value())"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert first.returncode == 0, first.stderr
    base, value = first.stdout.split()
    assert Path(base) == cache / "layers" / python.hex / "python" and value == "42"
    fetched = [line for line in first.stderr.splitlines() if "fetched python layer" in line]
    assert fetched and "compiled" in fetched[0], first.stderr
    before = _snapshot(cache / "layers")
    again = subprocess.run(
        [ENVSHIP, "exec", "--cache", str(cache), uri, "--", "python", "-c",
         "import asyncio, decimal, email.mime.text, http.client, json, logging.handlers, "
         "sqlite3, xml.dom.minidom, zipfile, nspkg.a, tinylib, pthmod; print('ok')"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert again.returncode == 0 and again.stdout.strip() == "ok", again.stderr
    assert _snapshot(cache / "layers") == before


def test_data_files_go_to_the_view_prefix(tmp_path: Path) -> None:
    from kits.nodekit import blob_from_members, dir_member, file_member, link_member

    one = replace(blob_from_members("dist", [
        file_member("site-packages/onemod.py", b"X = 1\n"),
        file_member("data/share/demo/a.txt", b"shared data\n"),
        file_member("data/bin/one-tool", b"#!/bin/sh\necho one-tool\n", mode=0o755),
        dir_member("data/etc"),
        file_member("data/etc/one.cfg", b"[one]\n"),
        link_member("data/share/demo/link.txt", "a.txt"),
    ]), dists=("one==1",), bytecode="packed")
    two = replace(blob_from_members("dist", [
        file_member("site-packages/twomod.py", b"Y = 2\n"),
        file_member("data/share/demo/b.txt", b"more data\n"),
    ]), dists=("two==1",), bytecode="packed")
    uri = write_store(tmp_path / "store", make_manifest2([one, two]), [one, two])
    view = Path(prepare(str(uri), cache_dir=tmp_path / "cache").path)
    assert (view / "share" / "demo" / "a.txt").read_text() == "shared data\n"
    assert (view / "share" / "demo" / "b.txt").read_text() == "more data\n"
    assert os.readlink(view / "share" / "demo" / "link.txt") == "a.txt"
    assert (view / "etc" / "one.cfg").stat().st_nlink == 2  # the layer's file and the view's
    out = subprocess.run([str(view / "bin" / "one-tool")], capture_output=True, text=True)
    assert out.stdout == "one-tool\n"
    bad = replace(blob_from_members("dist", [file_member("data/pyvenv.cfg", b"home = /\n")]),
                  dists=("bad==1",), bytecode="none")
    uri = write_store(tmp_path / "store2", make_manifest2([one, bad]), [one, bad])
    with pytest.raises(NodeError, match="overwrite the view's own file"):
        prepare(str(uri), cache_dir=tmp_path / "cache")


def test_a_failing_blob_among_parallel_fetches_fails_cleanly(
    envs: Envs, tmp_path: Path, serve: object
) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(envs.root, store)
    gone = envs.blobs["rpathlib"]
    (store / "blobs" / "sha256" / f"{gone.hex}.tar.gz").unlink()
    server = serve(store)  # type: ignore[operator]
    cache = tmp_path / "cache"
    with pytest.raises(NodeError, match=r"not found \(HTTP 404\)"):
        prepare(f"{server.url}/envs/{envs.a}.json", cache_dir=cache)
    layers = os.listdir(cache / "layers")
    assert gone.hex not in layers and not [n for n in layers if n.startswith(".")]
    assert not (cache / "envs" / envs.a).exists()
    # the blobs that did arrive are kept: the next attempt fetches only the missing one
    shutil.copy(envs.root / "blobs" / "sha256" / f"{gone.hex}.tar.gz", store / "blobs" / "sha256")
    before = sum(server.counts.values())
    prepare(f"{server.url}/envs/{envs.a}.json", cache_dir=cache)
    fetched = sum(server.counts.values()) - before - 1  # minus the manifest
    assert fetched == len(envs.blobs) - 1 - len(layers)  # A's blobs (no solo) not yet cached
