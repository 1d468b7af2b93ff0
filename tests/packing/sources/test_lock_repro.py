"""Same lock -> same digests (fresh caches each time); unpinned / incomplete / unbuildable locks."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envship.errors import PackError
from envship.packing.pipeline import pack_lock
from envship.packing.sources.lock import BuildError, read_lock
from kits.buildkit import NUMPY, SIX


def _fresh_build(lock: Path, base: Path, platform: str) -> tuple[str, list[str]]:
    """Build with empty envship and uv caches, in its own process (its own environment)."""
    code = (
        "import json, sys\n"
        "from envship.packing.pipeline import pack_lock\n"
        f"r = pack_lock({str(lock)!r}, python_version='3.12', platform={platform!r},"
        f" code=False, cache_dir={str(base / 'cache')!r})\n"
        "print(json.dumps([r.env_id, [l.digest for l in r.manifest.layers]]))\n"
    )
    base.mkdir(parents=True)
    env = {**os.environ, "UV_CACHE_DIR": str(base / "uv-cache"),
           "ENVSHIP_HOME": str(base / "home")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=base)
    assert proc.returncode == 0, proc.stderr
    env_id, digests = json.loads(proc.stdout.strip().splitlines()[-1])
    return str(env_id), [str(d) for d in digests]


def test_same_lock_same_digests_with_fresh_caches(lock_dir: Path, tmp_path: Path) -> None:
    a = _fresh_build(lock_dir / "requirements.txt", tmp_path / "a", "manylinux_2_28_x86_64")
    b = _fresh_build(lock_dir / "requirements.txt", tmp_path / "b", "manylinux_2_28_x86_64")
    assert a == b
    assert len(a[1]) == 2  # one dist layer each for numpy and six


def test_line_order_comments_and_hash_spelling_do_not_matter(tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    one.write_text(f"{NUMPY}\n{SIX}\n")
    two = tmp_path / "two.txt"
    two.write_text(f"# other order\n{SIX.replace('six', 'Six')}   # comment\n\n{NUMPY}\n")
    assert read_lock(one).lines == tuple(
        ln.replace("Six", "six") for ln in read_lock(two).lines)


def test_requirements_parsing(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.17.0 \\\n    --hash=sha256:bb --hash=sha256:aa\n")
    req = tmp_path / "requirements.txt"
    req.write_text("--index-url https://example.invalid/simple\n-r base.txt\n"
                   "tomli==2.0.1 ; python_version < '3.11'\nrequests>=2\n")
    pinned = read_lock(req)
    assert pinned.options == ("--index-url https://example.invalid/simple",)
    assert pinned.lines == (
        'requests>=2',
        "six==1.17.0 --hash=sha256:aa --hash=sha256:bb",
        'tomli==2.0.1; python_version < "3.11"',
    )
    assert pinned.unpinned == ("requests",)
    (tmp_path / "edit.txt").write_text("-e ./mylib\n")
    with pytest.raises(PackError, match="--code PATH"):
        read_lock(tmp_path / "edit.txt")
    with pytest.raises(PackError, match="no such file"):
        read_lock(tmp_path / "missing.txt")


def test_unpinned_warns_and_strict_fails(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                         builders_cache: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("six\n")
    with caplog.at_level(logging.WARNING):
        result = pack_lock(req, code=False, cache_dir=builders_cache)
    assert "not reproducible" in caplog.text and "six" in caplog.text
    assert [d.name for d in result.manifest.distributions] == ["six"]
    with pytest.raises(BuildError, match="not pinned to one version: six"):
        pack_lock(req, code=False, strict=True, cache_dir=builders_cache)


def test_incomplete_lock_warns_and_strict_fails(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                builders_cache: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("python-dateutil==2.9.0.post0\n")  # needs six, which is not listed
    with caplog.at_level(logging.WARNING):
        result = pack_lock(req, code=False, cache_dir=builders_cache)
    assert "does not list six" in caplog.text
    assert sorted(d.name for d in result.manifest.distributions) == ["python-dateutil", "six"]
    with pytest.raises(BuildError, match="does not list six"):
        pack_lock(req, code=False, strict=True, cache_dir=builders_cache)


def test_no_wheel_for_target_names_package_and_platform(tmp_path: Path,
                                                        builders_cache: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("pyyaml==5.3.1\n")  # sdist only for CPython 3.12 on aarch64
    with pytest.raises(BuildError) as err:
        pack_lock(req, python_version="3.12", platform="manylinux_2_28_aarch64", code=False,
                  cache_dir=builders_cache)
    msg = str(err.value)
    assert "pyyaml 5.3.1" in msg and "manylinux_2_28_aarch64" in msg and "3.12" in msg
    assert not (builders_cache / "builders" / "staged").exists() or not [
        p for p in (builders_cache / "builders" / "staged").iterdir() if p.name.startswith(".tmp")
    ]


def test_bad_target_options(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(f"{SIX}\n")
    with pytest.raises(PackError, match="--platform manylinux_2_99_aarch64"):
        pack_lock(req, platform="manylinux_2_99_aarch64", code=False)
    with pytest.raises(PackError, match="--python-version"):
        pack_lock(req, python_version="three", code=False)


def test_platform_tags_map_to_uv_names() -> None:
    from envship.packing.sources.lock.target import uv_platform

    assert uv_platform("manylinux_2_28_aarch64") == "aarch64-manylinux_2_28"
    assert uv_platform("manylinux2014_x86_64") == "x86_64-manylinux_2_17"
    assert uv_platform("macosx_14_0_arm64") == "aarch64-apple-darwin"
    assert uv_platform("win_amd64") == "x86_64-pc-windows-msvc"
    with pytest.raises(PackError, match="not a platform envship can build for"):
        uv_platform("manylinux_2_5_x86_64")


def test_lock_options_need_requirements(tmp_path: Path) -> None:
    from envship import pack

    with pytest.raises(PackError, match="--platform: only with --requirements"):
        pack(platform="manylinux_2_28_x86_64")
    req = tmp_path / "requirements.txt"
    req.write_text(f"{SIX}\n")
    with pytest.raises(PackError, match="exclude each other"):
        pack("/usr/bin/python3", requirements=req)
    with pytest.raises(PackError, match="--with-python"):
        pack(with_python=True, requirements=req)


def test_project_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           caplog: pytest.LogCaptureFixture) -> None:
    from envship.packing.sources.lock.project import find_project
    from envship.packing.sources.lock.stage import resolve_code

    flat = tmp_path / "flat"
    (flat / "my_tool").mkdir(parents=True)
    (flat / "my_tool" / "__init__.py").write_text("")
    (flat / "tests").mkdir()
    (flat / "tests" / "__init__.py").write_text("")
    (flat / "pyproject.toml").write_text(
        '[project]\nname = "my-tool"\ndynamic = ["version"]\n'
        '[project.scripts]\nmt = "my_tool:main"\n')
    proj = find_project(flat)
    assert (proj.source_dir, proj.top_level, proj.version) == (flat, ("my_tool",), "0+local")
    assert proj.entry_points == {"console_scripts": {"mt": "my_tool:main"}}

    empty = tmp_path / "scripts-only"
    empty.mkdir()
    (empty / "pyproject.toml").write_text('[project]\nname = "nothing"\nversion = "1"\n')
    monkeypatch.chdir(empty)
    with caplog.at_level(logging.WARNING):
        assert resolve_code(None) is None  # looked for, not asked for: a warning
    assert "no code layer" in caplog.text
    with pytest.raises(PackError, match="no importable package"):
        resolve_code(empty)
    assert resolve_code(False) is None
