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
from kits.packkit import all_names, built_by_label, layer_names, layer_ref
from kits.support import SampleEnv, make_venv, run, write_sample_project

ENVSHIP = str(Path(sys.executable).parent / "envship")


def test_layers_and_distributions(sample_pack: PackResult) -> None:
    m = sample_pack.manifest
    assert m.schema_id == "envship.manifest/3"
    dists = {d.name: d for d in m.distributions}
    code = [lay for lay in m.layers if lay.kind == "code" and lay.dists]
    assert [lay.dists for lay in code] == [("mylib==0.1.0",)]
    assert (dists["mylib"].source, dists["mylib"].layer) == ("editable", code[0].digest)
    # one dist layer per distribution, each named by it, in name order
    dist_layers = m.layers_of("dist")
    assert [lay.dists for lay in dist_layers] == [
        (f"{d.name}=={d.version}",) for d in m.distributions if d.source == "index"]
    numpy = m.layer_of("numpy")
    assert numpy is not None and numpy.kind == "dist"
    assert (dists["numpy"].source, dists["numpy"].layer) == ("index", numpy.digest)
    assert {"pip", "setuptools"} <= dists.keys()
    # python first (none here), then code layers, then dist layers, each group by dists
    order = {"python": 0, "code": 1, "dist": 2}
    keys = [(order[lay.kind], list(lay.dists)) for lay in m.layers]
    assert keys == sorted(keys)
    assert {lay.bytecode for lay in m.layers} <= {"packed", "none"}
    assert numpy.bytecode == "packed" and m.python.cache_tag == sys.implementation.cache_tag
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
    names = layer_names(sample_pack, "mylib")
    assert "site-packages/mylib/__init__.py" in names
    assert "site-packages/mylib/extra.py" in names
    assert "site-packages/mylib-0.1.0.dist-info/METADATA" in names
    assert not [n for n in names if n.endswith(".pth") or "__editable__" in n]
    assert "site-packages/mylib-0.1.0.dist-info/direct_url.json" not in names
    assert not [n for n in names if "egg-info" in n or "pyproject" in n]


def test_dist_layer_contents(sample_pack: PackResult, sample_env: SampleEnv) -> None:
    names = layer_names(sample_pack, "numpy")
    assert "site-packages/numpy/__init__.py" in names
    assert not [n for n in names if n != "site-packages"
                and not n.startswith(("site-packages/numpy", "data/"))]
    # console-script wrappers are regenerated on the node, never shipped
    everything = all_names(sample_pack)
    for script in ("f2py", "numpy-config", "pip", "mylib-hello"):
        assert f"data/bin/{script}" not in everything
    ref = layer_ref(sample_pack, "numpy")
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
    modes: set[int] = set()
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
        modes |= {m.mode for m in files}
    assert 0o755 in modes  # numpy ships executable .so files


def test_manifest_file_is_canonical(sample_pack: PackResult) -> None:
    assert sample_pack.output is not None
    raw = (sample_pack.output / "envs" / f"{sample_pack.env_id}.json").read_bytes()
    assert raw == canonical_json(json.loads(raw))
    assert hashlib.sha256(raw).hexdigest() == sample_pack.env_id
    assert Manifest.from_json(raw) == sample_pack.manifest


def test_layers_are_disjoint_and_merge_into_one_site_packages(
    sample_pack: PackResult, tmp_path: Path
) -> None:
    files: list[str] = []
    for ref in sample_pack.manifest.layers:
        with tarfile.open(sample_pack.blobs[ref.digest], "r:gz") as tar:
            files += [m.name for m in tar.getmembers() if m.isfile()]
        run(["tar", "xzf", str(sample_pack.blobs[ref.digest]), "-C", str(tmp_path)])
    assert len(files) == len(set(files)), "two layers hold the same file"
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; import mylib, numpy; "
        "print(mylib.hello(), numpy.__file__, numpy.__cached__)"
    )
    proc = run([sys.executable, "-S", "-B", "-c", code, str(tmp_path / "site-packages")])
    assert "hello from mylib 1" in proc.stdout
    assert str(tmp_path / "site-packages" / "numpy" / "__init__.py") in proc.stdout


def test_same_env_packed_cold_by_another_user_gives_identical_bytes(
    sample_env: SampleEnv, sample_pack: PackResult, tmp_path: Path
) -> None:
    """Cold pack (fresh build cache) in another dir, by another user with another home, time
    zone, umask and cwd, through the CLI: byte-identical blobs, same env id."""
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
    assert len(data["layers"]) == len(sample_pack.manifest.layers)
    again = Manifest.from_json((home / "out" / "envs" / f"{data['env_id']}.json").read_bytes())
    assert again == sample_pack.manifest
    for ref in again.layers:
        blob = home / "out" / "blobs" / "sha256" / f"{ref.hex}.tar.gz"
        assert blob.read_bytes() == sample_pack.blobs[ref.digest].read_bytes()


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
    assert not any(warm.built.values())
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
    assert {k for k, v in built_by_label(second).items() if v} == {"code editlib"}
    old, new = first.manifest, second.manifest
    assert old.layers_of("dist") == new.layers_of("dist")
    assert old.layer_of("editlib") != new.layer_of("editlib")
    assert second.env_id != first.env_id
    assert elapsed < 5, f"re-pack after an edit took {elapsed:.2f}s"
    ref = layer_ref(second, "editlib")
    with tarfile.open(second.blobs[ref.digest], "r:gz") as tar:
        member = tar.extractfile("site-packages/editlib/__init__.py")
        assert member is not None and b"VALUE = 2" in member.read()


def test_gzip_stream_is_plain_gzip(sample_pack: PackResult) -> None:
    ref = sample_pack.manifest.layer("code")
    assert ref is not None
    with gzip.open(sample_pack.blobs[ref.digest]) as fh:
        assert len(fh.read()) % tarfile.RECORDSIZE == 0


@pytest.mark.parametrize("kind", ["code", "dist"])
def test_pack_without_output_keeps_blobs_in_cache(
    sample_env: SampleEnv, sample_pack: PackResult, core_cache: Path, kind: str
) -> None:
    result = pack(sample_env.venv, cache_dir=core_cache)
    ref = result.manifest.layer(kind)
    assert ref is not None
    assert result.blobs[ref.digest].parent == core_cache / "blobs" / "sha256"


def test_a_local_wheel_packs_to_one_blob_whoever_installed_it_from_wherever(
    tmp_path: Path,
) -> None:
    """PEP 610's direct_url.json names the wheel file's path on the packing machine, in each
    installer's own JSON: it is left out, so pip and uv installs of one wheel kept in two
    places give one dist blob, with no path of this machine inside."""
    from kits.support import uv_bin
    from kits.wheelkit import write_wheel

    wheel = write_wheel(tmp_path / "w1", "localwheel", "1.0",
                        {"localwheel/__init__.py": b"VALUE = 7\n"})
    moved = tmp_path / "elsewhere" / wheel.name
    moved.parent.mkdir()
    shutil.copy(wheel, moved)
    by_uv = tmp_path / "by-uv"
    run([uv_bin(), "venv", "-q", "-p", sys.executable, str(by_uv)])
    run([uv_bin(), "pip", "install", "-q", "-p", str(by_uv / "bin" / "python"), str(wheel)])
    by_pip = tmp_path / "by-pip"
    run([sys.executable, "-m", "venv", "--without-pip", str(by_pip)])
    run([uv_bin(), "pip", "install", "-q", "-p", str(by_pip / "bin" / "python"), "pip"])
    run([str(by_pip / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", str(moved)])
    blobs = []
    for venv in (by_uv, by_pip):
        site = next((venv / "lib").glob("python3.*/site-packages"))
        assert (site / "localwheel-1.0.dist-info" / "direct_url.json").is_file()
        result = pack(venv, cache_dir=tmp_path / f"cache-{venv.name}")
        (dist,) = [d for d in result.manifest.distributions if d.name == "localwheel"]
        assert dist.source == "archive"
        names = layer_names(result, "localwheel")
        assert "site-packages/localwheel-1.0.dist-info/direct_url.json" not in names
        blob = result.blobs[layer_ref(result, "localwheel").digest]
        assert blob is not None
        data = gzip.decompress(blob.read_bytes())
        assert str(tmp_path).encode() not in data
        blobs.append(layer_ref(result, "localwheel").digest)
    assert blobs[0] == blobs[1]
