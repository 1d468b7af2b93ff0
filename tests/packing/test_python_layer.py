"""--with-python: the base interpreter as a layer, runnable on its own once unpacked."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from envship import pack
from envship.packing.pipeline import PackResult
from kits.support import SampleEnv

MM = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture(scope="module")
def with_python(sample_env: SampleEnv, core_cache: Path) -> PackResult:
    return pack(sample_env.venv, with_python=True, cache_dir=core_cache)


def test_python_layer_first_and_lean(with_python: PackResult, sample_pack: PackResult) -> None:
    m = with_python.manifest
    assert [lay.kind for lay in m.layers][:2] == ["python", "code"]
    assert m.layers[1:] == sample_pack.manifest.layers  # other layers unchanged
    assert m.layers[0].dists == () and m.layers[0].bytecode == "packed"
    ref = m.layer("python")
    assert ref is not None
    with tarfile.open(with_python.blobs[ref.digest], "r:gz") as tar:
        names = set(tar.getnames())
    lib = f"python/lib/python{MM}"
    assert f"python/bin/python{MM}" in names
    assert f"{lib}/os.py" in names and f"{lib}/json/__init__.py" in names
    assert any(n.startswith(f"{lib}/lib-dynload/") for n in names)
    for left_out in ("test", "idlelib", "tkinter", "ensurepip", "site-packages"):
        assert not [n for n in names if n.startswith(f"{lib}/{left_out}/")], left_out
    # the stdlib is byte-compiled at pack time (envship's pycs only, for the target's tag)
    tag = sys.implementation.cache_tag
    pycs = {n for n in names if n.endswith((".pyc", ".pyo"))}
    assert {f"{lib}/__pycache__/os.{tag}.pyc", f"{lib}/json/__pycache__/__init__.{tag}.pyc"} <= pycs
    assert all("/__pycache__/" in n and n.endswith(f".{tag}.pyc") for n in pycs)
    assert not [n for n in names if n.endswith(".a")]
    assert len([n for n in names if n.startswith("python/lib/libpython")]) <= 2  # no symlinks


def test_python_layer_runs(with_python: PackResult, tmp_path: Path) -> None:
    ref = with_python.manifest.layer("python")
    assert ref is not None
    with tarfile.open(with_python.blobs[ref.digest], "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    home = tmp_path / "python"
    before = sorted(p for p in home.rglob("*"))
    # bytecode writing on: the packed pycs are used as they are, nothing is (re)compiled
    env = {"PATH": os.environ["PATH"], "PYTHONHOME": str(home),
           "LD_LIBRARY_PATH": str(home / "lib")}
    proc = subprocess.run(
        [str(home / "bin" / f"python{MM}"), "-c",
         "import sys, json, decimal; print(sys.version.split()[0], sys.prefix, "
         "json.__spec__.cached.startswith(sys.prefix))"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [sys.version.split()[0], str(home), "True"]
    assert sorted(p for p in home.rglob("*")) == before


def test_python_layer_cached(sample_env: SampleEnv, core_cache: Path,
                             with_python: PackResult) -> None:
    again = pack(sample_env.venv, with_python=True, cache_dir=core_cache)
    assert not any(again.built.values())
    assert again.env_id == with_python.env_id
