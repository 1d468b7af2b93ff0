"""pack() on the sample env: layers, distributions, blob format, determinism, build cache."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from envship import pack
from envship.packing.manifest import Manifest, canonical_json
from envship.packing.pipeline import PackResult
from kits.packkit import layer_names
from kits.support import SampleEnv, make_venv, run, write_sample_project

ENVSHIP = str(Path(sys.executable).parent / "envship")


def test_layers_and_distributions(sample_pack: PackResult) -> None:
    m = sample_pack.manifest
    assert [lay.kind for lay in m.layers] == ["code", "deps"]
    dists = {d.name: d for d in m.distributions}
    assert (dists["mylib"].source, dists["mylib"].layer) == ("editable", "code")
    assert (dists["numpy"].source, dists["numpy"].layer) == ("index", "deps")
    assert {"pip", "setuptools"} <= dists.keys()
    assert [d.name for d in m.distributions] == sorted(dists)
    assert m.entry_points["console_scripts"]["mylib-hello"] == "mylib:main"
    assert "f2py" in m.entry_points["console_scripts"]
    assert sample_pack.output is not None
    assert (sample_pack.output / "envs" / f"{sample_pack.env_id}.json").is_file()
    for ref in m.layers:
        assert sample_pack.blobs[ref.digest] == (
            sample_pack.output / "blobs" / "sha256" / f"{ref.hex}.tar.gz"
        )


def test_code_layer_is_materialised(sample_pack: PackResult) -> None:
    names = layer_names(sample_pack, "code")
    assert "site-packages/mylib/__init__.py" in names
    assert "site-packages/mylib/extra.py" in names
    assert "site-packages/mylib-0.1.0.dist-info/METADATA" in names
    assert not [n for n in names if n.endswith(".pth") or "__editable__" in n]
    assert "site-packages/mylib-0.1.0.dist-info/direct_url.json" not in names
    assert not [n for n in names if "egg-info" in n or "pyproject" in n]


def test_deps_layer_contents(sample_pack: PackResult, sample_env: SampleEnv) -> None:
    names = layer_names(sample_pack, "deps")
    assert "site-packages/numpy/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("site-packages/mylib")]
    # console-script wrappers are regenerated on the node, never shipped
    for script in ("f2py", "numpy-config", "pip", "mylib-hello"):
        assert f"data/bin/{script}" not in names
    ref = sample_pack.manifest.layer("deps")
    assert ref is not None
    with tarfile.open(sample_pack.blobs[ref.digest], "r:gz") as tar:
        record = tar.extractfile(
            next(n for n in names if n.startswith("site-packages/numpy-")
                 and n.endswith(".dist-info/RECORD"))
        )
        assert record is not None
        text = record.read().decode()
    assert str(sample_env.venv) not in text  # RECORD rows of dropped wrappers are removed
    assert "numpy/__init__.py," in text


def test_blob_format_is_deterministic_tar_gz(sample_pack: PackResult) -> None:
    for ref in sample_pack.manifest.layers:
        path = sample_pack.blobs[ref.digest]
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == ref.hex
        assert len(data) == ref.size
        assert data[:3] == b"\x1f\x8b\x08"
        assert data[3] & 0x08 == 0, "gzip header must not carry a file name"
        assert data[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
        files = [m for m in members if m.isfile()]
        assert len(files) == ref.files
        assert all(m.isfile() or m.isdir() for m in members)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
        assert {m.mode for m in members if m.isdir()} == {0o755}
        assert {m.mode for m in files} <= {0o644, 0o755}
        keys = [tuple(m.name.split("/")) for m in members]
        assert keys == sorted(keys)
        seen: set[str] = set()
        for m in members:
            parent = m.name.rpartition("/")[0]
            assert not parent or parent in seen, f"{m.name} listed before its directory"
            seen.add(m.name)
    assert any(m.mode == 0o755 for m in files)  # numpy ships executable .so files


def test_manifest_file_is_canonical(sample_pack: PackResult) -> None:
    assert sample_pack.output is not None
    raw = (sample_pack.output / "envs" / f"{sample_pack.env_id}.json").read_bytes()
    assert raw == canonical_json(json.loads(raw))
    assert hashlib.sha256(raw).hexdigest() == sample_pack.env_id
    assert Manifest.from_json(raw) == sample_pack.manifest


def test_layers_unpack_with_tar_and_import(sample_pack: PackResult, tmp_path: Path) -> None:
    for ref in sample_pack.manifest.layers:
        dest = tmp_path / ref.kind
        dest.mkdir()
        run(["tar", "xzf", str(sample_pack.blobs[ref.digest]), "-C", str(dest)])
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import mylib, numpy; "
        "print(mylib.hello(), numpy.__file__)"
    )
    proc = run([sys.executable, "-S", "-c", code,
                str(tmp_path / "code" / "site-packages"), str(tmp_path / "deps" / "site-packages")])
    assert "hello from mylib 1" in proc.stdout
    assert str(tmp_path / "deps") in proc.stdout


def test_same_env_twice_gives_identical_bytes(
    sample_env: SampleEnv, sample_pack: PackResult, tmp_path: Path
) -> None:
    """Cold pack with a fresh build cache in another dir: byte-identical blobs, same env id."""
    again = pack(sample_env.venv, output=tmp_path / "again", cache_dir=tmp_path / "cache")
    assert again.built == {"code": True, "deps": True}
    assert again.env_id == sample_pack.env_id
    for ref in again.manifest.layers:
        assert again.blobs[ref.digest].read_bytes() == sample_pack.blobs[ref.digest].read_bytes()


def test_other_user_home_tz_umask_cwd_give_same_env_id(
    sample_env: SampleEnv, sample_pack: PackResult, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "USER": "someone-else",
        "LOGNAME": "someone-else", "TZ": "Asia/Tokyo", "LANG": "C",
        "ENVSHIP_HOME": str(home / "envship"),
    }
    proc = subprocess.run(
        ["sh", "-c", 'umask 077 && exec "$@"', "sh", ENVSHIP, "pack", "--python",
         str(sample_env.venv), "-o", "out", "--json"],
        cwd=home, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["env_id"] == sample_pack.env_id
    assert all(layer["built"] for layer in data["layers"])


def test_venv_rebuilt_at_another_path_gives_same_env_id(
    sample_env: SampleEnv, sample_pack: PackResult, tmp_path: Path
) -> None:
    """Same packages installed into a new venv (other path, other checkout path)."""
    numpy = next(d for d in sample_pack.manifest.distributions if d.name == "numpy")
    project = tmp_path / "elsewhere" / "mylib"
    shutil.copytree(sample_env.project, project,
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    make_venv(tmp_path / "other-venv", [f"numpy=={numpy.version}"], [project])
    other = pack(tmp_path / "other-venv", cache_dir=tmp_path / "cache")
    assert other.output is None
    assert other.manifest == sample_pack.manifest
    assert other.env_id == sample_pack.env_id


def test_warm_pack_hits_build_cache(
    sample_env: SampleEnv, sample_pack: PackResult, core_cache: Path, tmp_path: Path
) -> None:
    start = time.perf_counter()
    warm = pack(sample_env.venv, output=tmp_path / "warm", cache_dir=core_cache)
    elapsed = time.perf_counter() - start
    assert warm.built == {"code": False, "deps": False}
    assert warm.env_id == sample_pack.env_id
    assert elapsed < 5, f"warm pack took {elapsed:.2f}s"
    assert (tmp_path / "warm" / "envs" / f"{warm.env_id}.json").is_file()


def test_one_line_edit_rebuilds_only_code(tmp_path: Path, core_cache: Path) -> None:
    project = write_sample_project(tmp_path / "editlib", name="editlib")
    make_venv(tmp_path / "venv", [], [project])
    first = pack(tmp_path / "venv", cache_dir=core_cache)
    init = project / "src" / "editlib" / "__init__.py"
    init.write_text(init.read_text().replace("VALUE = 1", "VALUE = 2"))
    start = time.perf_counter()
    second = pack(tmp_path / "venv", cache_dir=core_cache)
    elapsed = time.perf_counter() - start
    assert second.built == {"code": True, "deps": False}
    old, new = first.manifest, second.manifest
    assert old.layer("deps") == new.layer("deps")
    assert old.layer("code") != new.layer("code")
    assert second.env_id != first.env_id
    assert elapsed < 5, f"re-pack after an edit took {elapsed:.2f}s"
    ref = new.layer("code")
    assert ref is not None
    with tarfile.open(second.blobs[ref.digest], "r:gz") as tar:
        member = tar.extractfile("site-packages/editlib/__init__.py")
        assert member is not None and b"VALUE = 2" in member.read()


def test_gzip_stream_is_plain_gzip(sample_pack: PackResult) -> None:
    ref = sample_pack.manifest.layer("code")
    assert ref is not None
    with gzip.open(sample_pack.blobs[ref.digest]) as fh:
        assert len(fh.read()) % tarfile.RECORDSIZE == 0


@pytest.mark.parametrize("kind", ["code", "deps"])
def test_pack_without_output_keeps_blobs_in_cache(
    sample_env: SampleEnv, sample_pack: PackResult, core_cache: Path, kind: str
) -> None:
    result = pack(sample_env.venv, cache_dir=core_cache)
    ref = result.manifest.layer(kind)
    assert ref is not None
    assert result.blobs[ref.digest].parent == core_cache / "blobs" / "sha256"
