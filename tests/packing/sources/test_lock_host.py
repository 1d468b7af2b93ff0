"""Build for this host from each lock format, then run the env with `envship exec`."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import envship
from envship.packing.pipeline import PackResult, pack_lock
from kits.buildkit import HOST_VERSION, NUMPY, SIX
from kits.support import run, uv_bin

ENVSHIP = str(Path(sys.executable).parent / "envship")


def _exec(env: Path, *cmd: str, cwd: Path | None = None) -> str:
    return run([ENVSHIP, "exec", str(env), "--", *cmd], cwd=cwd).stdout


@pytest.fixture(scope="module")
def pylock(lock_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pylock") / "pylock.toml"
    run([uv_bin(), "pip", "compile", "-q", str(lock_dir / "requirements.txt"), "-o", str(out),
         "--python-version", HOST_VERSION])
    return out


@pytest.fixture(scope="module")
def host_env(pylock: Path, lock_dir: Path, builders_cache: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[PackResult, Path]:
    out = tmp_path_factory.mktemp("host") / "out"
    result = envship.pack(requirements=pylock, code=lock_dir / "mylib", cache_dir=builders_cache,
                          output=out)
    return result, out


def test_pylock_env_runs_with_exec(host_env: tuple[PackResult, Path], tmp_path: Path) -> None:
    result, out = host_env
    assert [(lay.kind, lay.dists) for lay in result.manifest.layers] == [
        ("code", ("mylib==0.1.0",)), ("dist", (NUMPY,)), ("dist", (SIX,))]
    # a lock for this interpreter's version: bytecode compiled here, nothing left to the node
    assert {lay.bytecode for lay in result.manifest.layers} == {"packed"}
    code = (
        "import json, sys, numpy, six, mylib, mylib.extra; "
        "print(json.dumps([numpy.__version__, six.__version__, mylib.hello(), "
        "mylib.extra.double(21), numpy.arange(4).sum().item(), sys.prefix]))"
    )
    got = json.loads(_exec(out, "python", "-c", code, cwd=tmp_path))
    assert got[:5] == [NUMPY.split("==")[1], SIX.split("==")[1], "hello from mylib 1", 42, 6]
    assert got[5] != sys.prefix  # the env view, not this venv
    # the project's console script comes from [project.scripts]
    assert _exec(out, "mylib-hello", cwd=tmp_path).strip() == "hello from mylib 1"


def test_code_layer_is_the_project_source(host_env: tuple[PackResult, Path]) -> None:
    result, _ = host_env
    code = result.manifest.layer_of("mylib")
    assert code is not None and code.kind == "code"
    with tarfile.open(result.blobs[code.digest]) as tar:
        names = set(tar.getnames())
    assert "site-packages/mylib/__init__.py" in names
    assert "site-packages/mylib/extra.py" in names
    assert not [n for n in names if n.endswith((".pth", "direct_url.json"))]
    dists = {d.name: d for d in result.manifest.distributions}
    assert (dists["mylib"].source, dists["mylib"].layer) == ("editable", code.digest)


def test_code_edit_rebuilds_only_the_code_layer(
    pylock: Path, lock_dir: Path, builders_cache: Path, tmp_path: Path,
    host_env: tuple[PackResult, Path],
) -> None:
    import shutil

    project = tmp_path / "mylib"
    shutil.copytree(lock_dir / "mylib", project)
    (project / "src" / "mylib" / "extra.py").write_text("def double(x):\n    return x + x\n")
    again = pack_lock(pylock, code=project, cache_dir=builders_cache)
    first, _ = host_env
    assert again.manifest.layers_of("dist") == first.manifest.layers_of("dist")
    assert again.manifest.layer("code") != first.manifest.layer("code")
    assert [again.built[lay.digest] for lay in again.manifest.layers] == [True, False, False]


def test_uv_lock_project(builders_cache: Path, tmp_path: Path) -> None:
    """A uv project: its uv.lock gives the deps layer, its own package the code layer."""
    proj = tmp_path / "app"
    (proj / "src" / "app").mkdir(parents=True)
    (proj / "src" / "app" / "__init__.py").write_text("import six\nNAME = 'app'\n")
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "1.0"\nrequires-python = ">=3.10"\n'
        f'dependencies = ["{SIX}"]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    run([uv_bin(), "lock", "-q", "--directory", str(proj)])
    out = tmp_path / "out"
    result = envship.pack(requirements=proj / "uv.lock", code=proj, cache_dir=builders_cache,
                          output=out)
    m = result.manifest
    dists = {d.name: (d.source, d.layer) for d in m.distributions}
    assert dists == {"six": ("index", m.layers_of("dist")[0].digest),
                     "app": ("editable", m.layers_of("code")[0].digest)}
    got = _exec(out, "python", "-c", "import app, six; print(app.NAME, six.__version__)",
                cwd=tmp_path)
    assert got.split() == ["app", "1.17.0"]


def test_cli_pack_requirements_json(lock_dir: Path, tmp_path: Path) -> None:
    """`envship pack -r` from a directory without a project: deps layer only, JSON output."""
    proc = subprocess.run(
        [ENVSHIP, "pack", "-r", str(lock_dir / "requirements.txt"), "--platform",
         "manylinux_2_28_x86_64", "-o", str(tmp_path / "out"), "--json"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [(lay["kind"], lay["dists"]) for lay in data["layers"]] == [
        ("dist", [NUMPY]), ("dist", [SIX])]
    manifest = json.loads(Path(data["manifest"]).read_text())
    assert manifest["python"]["platform"] == "manylinux_2_28_x86_64"
    assert manifest["python"]["abi"] == f"cp{HOST_VERSION.replace('.', '')}"


def test_ship_from_a_lock(lock_dir: Path, builders_cache: Path, tmp_path: Path) -> None:
    import envship

    env = envship.ship(tmp_path / "store", requirements=lock_dir / "requirements.txt",
                       platform="manylinux_2_28_x86_64", code=False, cache_dir=builders_cache)
    assert env.manifest.python.platform == "manylinux_2_28_x86_64"
    assert Path(env.uri).is_file()
    got = _exec(Path(env.uri), "python", "-c", "import six; print(six.__version__)",
                cwd=tmp_path)
    assert got.strip() == "1.17.0"
