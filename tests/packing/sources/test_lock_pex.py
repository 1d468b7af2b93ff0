"""`--format both`: a reproducible PEX of the lock + project, runnable alone and under exec."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from envship.packing.pex import build_pex, complete_platform, pex_spark_conf
from envship.packing.sources.lock.target import resolve_target
from kits.buildkit import NUMPY
from kits.support import run

ENVSHIP = str(Path(sys.executable).parent / "envship")
CHECK = "import numpy, six, mylib; print(numpy.__version__, mylib.hello())"


@pytest.fixture(scope="module")
def packed(lock_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pex") / "out"
    proc = subprocess.run(
        [ENVSHIP, "pack", "-r", str(lock_dir / "requirements.txt"), "--code",
         str(lock_dir / "mylib"), "--format", "both", "-o", str(out), "--json"],
        capture_output=True, text=True, cwd=lock_dir,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [lay["kind"] for lay in data["layers"]][0] == "code"
    assert {lay["kind"] for lay in data["layers"]} == {"code", "dist"}
    assert (out / "env.pex").is_file()
    assert data["pex"] == str(out / "env.pex")
    return out


def test_pex_runs_standalone(packed: Path, tmp_path: Path) -> None:
    got = run([sys.executable, str(packed / "env.pex"), "-c", CHECK], cwd=tmp_path).stdout
    assert got.split() == [NUMPY.split("==")[1], "hello", "from", "mylib", "1"]
    with zipfile.ZipFile(packed / "env.pex") as zf:
        names = zf.namelist()
        assert "mylib/__init__.py" in names
        assert {zi.date_time for zi in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert (packed / "env.pex").read_bytes().startswith(b"#!/usr/bin/env python3.")


def test_pex_runs_under_envship_exec(packed: Path, tmp_path: Path) -> None:
    got = run([ENVSHIP, "exec", str(packed), "--", "python", str(packed / "env.pex"), "-c",
               CHECK], cwd=tmp_path).stdout
    assert got.split()[0] == NUMPY.split("==")[1]


def test_pex_is_reproducible(lock_dir: Path, tmp_path: Path) -> None:
    """Two builds of one lock give the same bytes (six only: numpy's zip is slow to write)."""
    req = tmp_path / "requirements.txt"
    req.write_text("six==1.17.0\n")
    one, two = (build_pex(req, tmp_path / name, code=lock_dir / "mylib")
                for name in ("one.pex", "two.pex"))
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (one, two)]
    assert digest[0] == digest[1]
    got = run([sys.executable, str(two), "-c", "import six, mylib; print(six.__version__)"],
              cwd=tmp_path).stdout
    assert got.strip() == "1.17.0"


def test_complete_platform_for_aarch64() -> None:
    plat = complete_platform(resolve_target("3.12", "manylinux_2_28_aarch64"))
    env = plat["marker_environment"]
    assert (env["platform_machine"], env["python_version"], env["sys_platform"]) == (
        "aarch64", "3.12", "linux")
    tags = plat["compatible_tags"]
    assert tags[0] == "cp312-cp312-manylinux_2_28_aarch64"
    assert "cp312-cp312-manylinux_2_17_aarch64" in tags and "py3-none-any" in tags
    assert not [t for t in tags if "x86_64" in t]


def test_pex_spark_conf() -> None:
    conf = pex_spark_conf("s3a://bucket/envs/app.pex")
    assert conf == {"spark.files": "s3a://bucket/envs/app.pex",
                    "spark.pyspark.python": "./app.pex",
                    "spark.executorEnv.PEX_ROOT": "./.pex",
                    "spark.executorEnv.PEX_INHERIT_PATH": "fallback"}


def test_format_pex_needs_requirements(tmp_path: Path) -> None:
    proc = subprocess.run([ENVSHIP, "pack", "--format", "pex", "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "needs --requirements" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_format_pex_without_pex_names_the_extra(tmp_path: Path) -> None:
    """pex not importable (sys.modules["pex"] = None is how Python spells "not installed"):
    one line naming the extra to install, nothing written."""
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    prog = ("import sys; sys.modules['pex'] = None\n"
            "sys.argv = ['envship', 'pack', '-r', 'requirements.txt', '--python-version', "
            "'3.11', '--platform', 'manylinux_2_28_x86_64', '--format', 'pex', '-o', 'o']\n"
            "from envship.cli import run; run()\n")
    proc = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "envship[pex]" in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "o").exists()
