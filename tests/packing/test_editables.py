"""Editable installs of every flavour, local dirs, stray files and default exclusions."""

from __future__ import annotations

import logging
import shutil
import sys
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from envship import pack
from envship.errors import PackError
from envship.packing.pipeline import PackResult
from envship.packing.sources.snapshot import take_snapshot
from kits.packkit import blob_names, layer_names, layer_ref
from kits.support import make_venv, run, uv_bin, write_sample_project

# (import name, distribution source) of everything the flavours venv installs from a checkout
CHECKOUTS = {
    "flatlib": "editable",  # setuptools, flat layout: __editable___*_finder.py with MAPPING
    "strictlib": "editable",  # setuptools editable_mode=strict: link tree + path .pth
    "compatlib": "editable",  # setuptools editable_mode=compat: path .pth
    "hatchlib": "editable",  # hatchling: _hatchlib.pth path entry
    "exactlib": "editable",  # hatchling dev-mode-exact: editables' _editable_impl_*.py hook
    "egglib": "editable",  # legacy `setup.py develop`: egg-link + easy-install.pth
    "locallib": "local",  # `pip install ./dir` (not editable)
}


@dataclass(frozen=True)
class Flavours:
    venv: Path
    site: Path
    root: Path


def _write_egg_link_project(root: Path, site: Path) -> None:
    """Do by hand what legacy `setup.py develop` did (modern setuptools no longer offers it).

    It left `<name>.egg-info` in the checkout, wrote `site-packages/<name>.egg-link` holding the
    checkout path (+ a line with the relative setup.py dir) and appended the path to
    `easy-install.pth`.
    """
    pkg = root / "egglib"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 'egg'\n")
    info = root / "egglib.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: egglib\nVersion: 0.3\n")
    (info / "top_level.txt").write_text("egglib\n")
    (info / "entry_points.txt").write_text("[console_scripts]\negg-hello = egglib:main\n")
    (site / "egglib.egg-link").write_text(f"{root}\n.")
    (site / "easy-install.pth").write_text(f"{root}\n")


@pytest.fixture(scope="module")
def flavours(tmp_path_factory: pytest.TempPathFactory) -> Flavours:
    base = tmp_path_factory.mktemp("flavours")
    py = make_venv(base / "venv", ["py4j"])
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run([str(py), "-c", code]).stdout.strip())
    uv = uv_bin()

    def install(name: str, *args: str, backend: str = "setuptools", extra: str = "") -> Path:
        proj = write_sample_project(base / name, name=name, backend=backend)
        if extra:
            (proj / "pyproject.toml").write_text((proj / "pyproject.toml").read_text() + extra)
        if name == "flatlib":
            shutil.move(str(proj / "src" / name), str(proj / name))
            shutil.rmtree(proj / "src")
        # files the code layer must leave out
        pkg = next(p for p in (proj / "src" / name, proj / name) if p.exists())
        (pkg / "debug.log").write_text("ignored by .gitignore\n")
        (pkg / "scratch").mkdir()
        (pkg / "scratch" / "notes.py").write_text("ignored = True\n")
        (pkg / "__pycache__").mkdir()
        (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
        run([uv, "pip", "install", "-q", "-p", str(py), *args, str(proj)])
        return proj

    install("flatlib", "-e")
    install("strictlib", "--config-settings", "editable_mode=strict", "-e")
    install("compatlib", "--config-settings", "editable_mode=compat", "-e")
    install("hatchlib", "-e", backend="hatchling")
    install("exactlib", "-e", backend="hatchling",
            extra="\n[tool.hatch.build]\ndev-mode-exact = true\n")
    install("locallib")
    _write_egg_link_project(base / "egglib", site)
    (site / "stray_mod.py").write_text("STRAY = 1\n")
    (site / "straypkg").mkdir()
    (site / "straypkg" / "__init__.py").write_text("")
    (base / "outside").mkdir()
    (site / "zz_extra.pth").write_text(f"# added by hand\n{base / 'outside'}\n")
    return Flavours(base / "venv", site, base)


@pytest.fixture(scope="module")
def flavours_pack(flavours: Flavours, tmp_path_factory: pytest.TempPathFactory) -> PackResult:
    cache = tmp_path_factory.mktemp("flavours-cache")
    return pack(flavours.venv, cache_dir=cache)


def test_snapshot_finds_every_flavour(flavours: Flavours) -> None:
    snap = take_snapshot(flavours.venv)
    for name, source in CHECKOUTS.items():
        dist = snap.distribution(name)
        assert dist is not None, name
        assert dist.source == source, name
        if source == "editable":
            assert dist.roots, f"{name}: no source root found"
    flat = snap.distribution("flatlib")
    assert flat is not None
    assert [(r.kind, r.name) for r in flat.roots] == [("package", "flatlib")]
    assert any("__editable___flatlib" in p for p in flat.pointer_files)
    exact = snap.distribution("exactlib")
    assert exact is not None and [(r.kind, r.name) for r in exact.roots] == [
        ("package", "exactlib")
    ]
    hatch = snap.distribution("hatchlib")
    assert hatch is not None and [r.kind for r in hatch.roots] == ["path"]
    assert snap.distribution("egglib") is not None
    assert str(flavours.site / "stray_mod.py") in snap.stray


def test_code_layer_materialises_every_flavour(flavours_pack: PackResult) -> None:
    m = flavours_pack.manifest
    names = {n for ref in m.layers_of("code") if ref.dists  # not the stray files' layer
             for n in blob_names(flavours_pack, ref)}
    for name in CHECKOUTS:
        assert f"site-packages/{name}/__init__.py" in names, name
    for name in ("flatlib", "strictlib", "compatlib", "hatchlib", "exactlib", "locallib"):
        assert f"site-packages/{name}-0.1.0.dist-info/METADATA" in names, name
    assert "site-packages/egglib.egg-info/PKG-INFO" in names
    assert "site-packages/flatlib/extra.py" in names
    leaks = [n for n in names if n.endswith(".pth") or "__editable__" in n
             or "_editable_impl" in n or n.endswith("direct_url.json") or n.endswith(".egg-link")]
    assert leaks == []
    # locallib is a regular (built) install: its files are whatever its wheel held
    ignored = [n for n in names if ("debug.log" in n or "scratch" in n)
               and not n.startswith("site-packages/locallib")]
    assert ignored == []
    # the only bytecode is envship's own, one pyc beside each module (the checkouts' is not taken)
    tag = sys.implementation.cache_tag
    for n in names:
        if "__pycache__" in n and not n.endswith("__pycache__"):
            head, _, pyc = n.rpartition("/__pycache__/")
            assert pyc.endswith(f".{tag}.pyc") and f"{head}/{pyc[:-len(tag) - 5]}.py" in names, n
    dists = {d.name: d for d in m.distributions}
    for name, source in CHECKOUTS.items():
        ref = layer_ref(flavours_pack, name)
        assert (dists[name].source, dists[name].layer) == (source, ref.digest)
        assert ref.kind == "code" and ref.dists == (f"{name}=={dists[name].version}",)
    scripts = flavours_pack.manifest.entry_points["console_scripts"]
    assert scripts["egg-hello"] == "egglib:main"
    assert scripts["hatchlib-hello"] == "hatchlib:main"


def test_layers_import_every_flavour(flavours_pack: PackResult, tmp_path: Path) -> None:
    for ref in flavours_pack.manifest.layers:
        with tarfile.open(flavours_pack.blobs[ref.digest], "r:gz") as tar:
            tar.extractall(tmp_path, filter="data")  # one merged site-packages, as on a node
    mods = ", ".join([*CHECKOUTS, "stray_mod"])
    code = textwrap.dedent(f"""\
        import sys
        sys.path[:0] = sys.argv[1:]
        import {mods}
        for m in ({mods}):
            assert m.__file__.startswith(sys.argv[1]), m
        print(hatchlib.hello(), egglib.VALUE)
    """)
    proc = run([sys.executable, "-S", "-c", code, str(tmp_path / "site-packages")])
    assert "hello from hatchlib 1 egg" in proc.stdout


def test_stray_files_are_warned_and_included(
    flavours: Flavours, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.WARNING, logger="envship"):
        result = pack(flavours.venv, cache_dir=tmp_path / "cache")
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "stray_mod.py" in warned and "straypkg" in warned
    assert "zz_extra.pth adds" in warned and "outside the environment" in warned
    names = layer_names(result, "stray")
    assert "site-packages/stray_mod.py" in names
    assert "site-packages/straypkg/__init__.py" in names
    assert "site-packages/easy-install.pth" not in names
    assert "site-packages/zz_extra.pth" in names


def test_py4j_left_out_by_default(flavours_pack: PackResult) -> None:
    m = flavours_pack.manifest
    assert "py4j" not in {d.name for d in m.distributions}
    (excluded,) = [e for e in m.excluded if e.name == "py4j"]
    assert "Spark runtime" in excluded.reason
    names = {n for ref in flavours_pack.manifest.layers for n in blob_names(flavours_pack, ref)}
    assert not [n for n in names if "py4j" in n]
    assert "py4j" not in m.entry_points.get("console_scripts", {})


def test_include_keeps_py4j_with_its_data_files(flavours: Flavours, tmp_path: Path) -> None:
    result = pack(flavours.venv, include=["Py4J"], cache_dir=tmp_path / "cache")
    m = result.manifest
    assert "py4j" in {d.name for d in m.distributions}
    assert not [e for e in m.excluded if e.name == "py4j"]
    names = layer_names(result, "py4j")
    assert "site-packages/py4j/__init__.py" in names
    assert [n for n in names if n.startswith("data/share/py4j/") and n.endswith(".jar")]


def test_only_selects_distributions(flavours: Flavours, tmp_path: Path) -> None:
    result = pack(flavours.venv, only=["hatchlib", "FlatLib"], cache_dir=tmp_path / "c")
    m = result.manifest
    assert {d.name for d in m.distributions} == {"flatlib", "hatchlib"}
    reasons = {e.name: e.reason for e in m.excluded}
    assert reasons["numpy" if "numpy" in reasons else "pip"] == "not selected by --only"
    assert reasons["py4j"] == "not selected by --only"
    # no dist layer: only the code layers and the stray files nobody owns
    assert m.layers_of("dist") == ()
    stray_files = [n for n in layer_names(result, "stray")
                   if not n.endswith("/") and "__pycache__" not in n]
    assert sorted(n for n in stray_files if "." in n.rsplit("/", 1)[-1]) == [
        "site-packages/stray_mod.py", "site-packages/straypkg/__init__.py",
        "site-packages/zz_extra.pth"]
    with pytest.raises(PackError, match="not installed.*no-such-dist"):
        pack(flavours.venv, only=["no_such.dist"], cache_dir=tmp_path / "c")


def test_exclude_leaves_files_out(flavours: Flavours, tmp_path: Path) -> None:
    result = pack(flavours.venv, exclude=["pip", "CompatLib"], cache_dir=tmp_path / "c")
    m = result.manifest
    reasons = {e.name: e.reason for e in m.excluded}
    assert reasons["pip"] == "excluded by --exclude"
    assert reasons["compatlib"] == "excluded by --exclude"
    names = {n for ref in m.layers for n in blob_names(result, ref)}
    assert not [n for n in names if n.startswith("site-packages/pip/")]
    assert "site-packages/compatlib/__init__.py" not in names
    assert "pip" not in m.entry_points["console_scripts"]
