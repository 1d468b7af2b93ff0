"""Real conda envs (py-rattler, a local channel built here) packed, moved away, run elsewhere.

Two prefixes of different lengths hold the same packages; both are packed into one local store,
then renamed away, so nothing at the old paths can make a test pass by accident.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import source_hash
from pathlib import Path

import pytest

from envship import pack
from envship.node.conda import relocate
from envship.node.errors import NodeError
from envship.packing.bytecode import CompilePool, Compiler
from envship.packing.diff import diff_manifests
from envship.packing.layers import LayerEntry, LayerPlan
from envship.packing.pipeline import PackResult
from envship.packing.sources.conda import unprefix
from kits.condakit import PLACEHOLDER, CondaKit, install_env

ENVSHIP = str(Path(sys.executable).parent / "envship")


@dataclass(frozen=True)
class Packed:
    store: Path
    a: PackResult
    b: PackResult
    moved: tuple[Path, Path]  # where the source prefixes went (their old paths are gone)
    gone: tuple[Path, Path]
    bytecode_log: tuple[str, ...]  # what packing env a said of its bytecode


@pytest.fixture(scope="module")
def packed(conda_kit: CondaKit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packed]:
    base = tmp_path_factory.mktemp("conda-envs")
    a = base / "a"
    b = base / "a-much-longer-prefix-name" / "envs" / "b"
    for prefix in (a, b):
        install_env(conda_kit, prefix, base / "pkgs")
    store = base / "store"
    cache = base / "build-cache"
    said = _Said()
    logger = logging.getLogger("envship.packing.bytecode")
    logger.addHandler(said)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        ra = pack(a / "bin" / "python", output=store, cache_dir=cache)
    finally:
        logger.removeHandler(said)
        logger.setLevel(level)
    rb = pack(b / "bin" / "python", output=store, cache_dir=cache)
    moved = (base / "moved-a", base / "moved-b")
    a.rename(moved[0])
    b.rename(moved[1])
    yield Packed(store, ra, rb, moved, (a, b), tuple(said.messages))


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _exec(store: Path, env_id: str, cache: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ENVSHIP_CACHE=str(cache))
    env.pop("FOO_DATA", None)
    ref = str(store / "envs" / f"{env_id}.json")
    return subprocess.run([ENVSHIP, "exec", ref, "--", *cmd], capture_output=True, text=True,
                          env=env, timeout=120)


def test_same_packages_at_two_prefixes_share_every_blob(packed: Packed) -> None:
    layers_a = [lay.digest for lay in packed.a.manifest.layers]
    layers_b = [lay.digest for lay in packed.b.manifest.layers]
    assert layers_a == layers_b
    assert packed.a.env_id == packed.b.env_id  # nothing of the install path in the manifest
    assert str(packed.gone[0]) not in packed.a.manifest.to_json().decode()


def test_manifest_has_one_layer_per_conda_package(packed: Packed) -> None:
    m = packed.a.manifest
    kinds = [(lay.kind, lay.package.name if lay.package else None) for lay in m.layers]
    assert kinds[:4] == [("python", "python"), ("conda", "foocli"), ("conda", "libfoo"),
                         ("conda", "pyfoo")]
    assert ("dist", None) in kinds  # tinyextra, pip-installed on top
    # no stray files: rattler's CACHEDIR.TAG at the prefix's root is the installer's, left out
    assert ("code", None) not in kinds
    assert all(name != "python_abi" for _, name in kinds)  # a metapackage: no empty layer
    libfoo = next(lay for lay in m.layers if lay.package and lay.package.name == "libfoo")
    assert [(r.path, r.mode) for r in libfoo.relocations] == [
        ("etc/foo.conf", "text"), ("lib/libfoo.so.1.0", "binary")]
    assert libfoo.relocations[0].placeholder == PLACEHOLDER
    foocli = next(lay for lay in m.layers if lay.package and lay.package.name == "foocli")
    assert foocli.package is not None and foocli.package.noarch == "python"
    assert foocli.entry_points == ("foocli = foocli.main:run",)
    python = m.layers[0]
    assert [r.path for r in python.relocations] == [
        f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/"
        f"_sysconfigdata__linux_x86_64-linux-gnu.py"]
    sources = {d.name: d.source for d in m.distributions}
    assert sources == {"foocli": "conda", "pyfoo": "conda", "tinyextra": "archive"}
    assert dict(m.entry_points["console_scripts"]) == {"tinyextra": "tinyextra:main"}
    assert all(lay.unpacked and lay.unpacked > 0 for lay in m.layers)


def test_blob_holds_the_package_form(packed: Packed, conda_kit: CondaKit, tmp_path: Path
                                     ) -> None:
    import tarfile

    m = packed.a.manifest
    libfoo = next(lay for lay in m.layers if lay.package and lay.package.name == "libfoo")
    with tarfile.open(packed.store / "blobs" / "sha256" / f"{libfoo.hex}.tar.gz") as tar:
        names = set(tar.getnames())
        conf = tar.extractfile("etc/foo.conf").read()  # type: ignore[union-attr]
        lib = tar.extractfile("lib/libfoo.so.1.0").read()  # type: ignore[union-attr]
        link = tar.getmember("lib/libfoo.so.1")
    assert {"bin/foo", "include/foo.h", "share/foo/data.txt",
            "etc/conda/activate.d/libfoo.sh"} <= names
    assert conf == f"datadir = {PLACEHOLDER}/share/foo\n".encode()
    assert PLACEHOLDER.encode() + b"/share/foo\0" in lib
    assert link.issym() and link.linkname == "libfoo.so.1.0"

    python = m.layers[0]  # the package's own bytecode, taken in the canonical form
    tag, mm = sys.implementation.cache_tag, f"{sys.version_info[0]}.{sys.version_info[1]}"
    with tarfile.open(packed.store / "blobs" / "sha256" / f"{python.hex}.tar.gz") as tar:
        member = tar.extractfile(f"lib/python{mm}/__pycache__/os.{tag}.pyc")
        pyc = member.read() if member is not None else b""
        names = set(tar.getnames())
    source = (packed.moved[0] / "lib" / f"python{mm}" / "os.py").read_bytes()
    assert pyc[4:16] == b"\x01\0\0\0" + source_hash(source)  # unchecked hash-based
    # ... the bytes a fresh compile of the source gives (co_filename "os.py" either way)
    with CompilePool(Compiler(sys.executable, tag), tmp_path / "fresh") as pool:
        done = dict(pool.compile([LayerPlan("code", (LayerEntry("site-packages/os.py",
                                 str(packed.moved[0] / "lib" / f"python{mm}" / "os.py")),),
                                 "record")]))
        assert pool.reused == 0
    assert Path(done[0][0].source).read_bytes() == pyc
    # ... and the package's pycs were taken, not compiled: all but the modules of pyfoo,
    # foocli (noarch: no pycs in the package) and tinyextra (uv writes none)
    said = [m for m in packed.bytecode_log if "taken from their installer" in m]
    taken, _, compiled = said[0].partition(" modules taken from their installer's pycs, ")
    assert int(taken.rpartition(" ")[2]) > 500 and compiled == "4 compiled"
    assert f"lib/python{mm}/__pycache__/_sysconfigdata__linux_x86_64-linux-gnu.{tag}.pyc" \
        not in names  # its source is rewritten on the node: no bytecode of the placeholder form
    assert python.bytecode == "packed"


@pytest.fixture(scope="module")
def node_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node cache shared by the tests that run env a (the first one builds its view)."""
    return tmp_path_factory.mktemp("conda-node") / "cache"


def test_runs_at_the_new_place_with_the_source_env_gone(packed: Packed, node_cache: Path
                                                        ) -> None:
    assert not packed.gone[0].exists() and not packed.gone[1].exists()
    cache = node_cache
    run = lambda *cmd: _exec(packed.store, packed.a.env_id, cache, *cmd)  # noqa: E731
    tool = run("foo")
    assert tool.returncode == 0, tool.stderr
    assert tool.stdout == "foo 42 data of libfoo\n"  # binary placeholder rewritten for the view
    probe = run("python", "-c", (
        "import json, os, sys, sysconfig, pyfoo\n"
        "print(json.dumps({'prefix': sys.prefix, 'version': sys.version, 'answer': pyfoo.answer(),"
        " 'datadir': pyfoo.datadir(), 'data': pyfoo.DATA,"
        " 'sysconfig': sysconfig.get_config_var('prefix'), 'FOO_DATA': os.environ.get('FOO_DATA'),"
        " 'conf': open(os.path.join(sys.prefix, 'etc', 'foo.conf')).read()}))"))
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout)
    view = got["prefix"]
    assert view.startswith(str(cache)) and Path(view, "lib", "libfoo.so.1.0").is_file()
    assert got["version"].startswith(sys.version.split()[0])  # sys.version intact
    assert got["answer"] == 42  # the extension found libfoo through $ORIGIN/../../..
    assert got["datadir"] == got["data"] == f"{view}/share/foo"
    assert got["sysconfig"] == view
    assert got["FOO_DATA"] == f"{view}/share/foo"  # activate.d took effect
    assert got["conf"] == f"datadir = {view}/share/foo\n"
    cli = run("foocli")
    assert cli.returncode == 0 and cli.stdout == f"foocli {view}\n", cli.stderr
    hello = run("foocli-hello")
    assert hello.stdout == "hello from foocli\n", hello.stderr
    extra = run("tinyextra")
    assert extra.stdout == "tinyextra ok\n", extra.stderr
    # the view's relocated files are its own copies; the rest are links into the layers
    assert os.stat(Path(view, "etc", "foo.conf")).st_nlink == 1
    assert os.stat(Path(view, "include", "foo.h")).st_nlink > 1
    cross = Path(view, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                 "site-packages", "pyfoo", "libfoo.so.1")  # a link into another package
    assert os.readlink(cross) == "../../../libfoo.so.1"
    assert Path(os.path.realpath(cross)) == Path(view, "lib", "libfoo.so.1.0")


_WARM_PROBE = """
import os, sys
def execve(exe, argv, env):  # where `envship exec` would start the command: report and stop
    modules = sorted(sys.modules)
    import json
    print(json.dumps({"modules": modules, "exe": exe, "env": env}))
    sys.stdout.flush()
    os._exit(0)
os.execve = execve
sys.argv = ["envship", "exec", *sys.argv[1:]]
from envship._entry import main
main()
"""


def test_warm_start_activates_without_heavy_imports(packed: Packed, node_cache: Path) -> None:
    cache = node_cache
    assert _exec(packed.store, packed.a.env_id, cache, "true").returncode == 0  # view there
    ref = str(packed.store / "envs" / f"{packed.a.env_id}.json")
    proc = subprocess.run([sys.executable, "-c", _WARM_PROBE, ref, "--", "foo"],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, ENVSHIP_CACHE=str(cache)))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    view = str(cache / "envs" / packed.a.env_id)
    assert got["exe"] == f"{view}/bin/foo"
    assert got["env"]["FOO_DATA"] == f"{view}/share/foo"  # activate.d ran
    # what the warm path must not pay for: subprocess, re (+ enum), json, typing, the runtime
    heavy = {"subprocess", "re", "enum", "json", "typing", "tarfile", "urllib.request",
             "envship.node.runtime", "envship.node.conda"}
    assert heavy.isdisjoint(got["modules"]), heavy & set(got["modules"])


def test_single_file_node_script_runs_the_conda_env(
    packed: Packed, node_script: Path, tmp_path: Path
) -> None:
    ref = str(packed.store / "envs" / f"{packed.a.env_id}.json")
    env = dict(os.environ, ENVSHIP_CACHE=str(tmp_path / "node"))
    probe = 'import sys, pyfoo; print(sys.prefix, pyfoo.answer())'
    proc = subprocess.run(["/usr/bin/env", "python3", str(node_script), ref, "--", "sh", "-c",
                           f'foo && echo $FOO_DATA && python -c "{probe}"'],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    view = str(tmp_path / "node" / "envs" / packed.a.env_id)
    assert proc.stdout.splitlines() == ["foo 42 data of libfoo", f"{view}/share/foo",
                                        f"{view} 42"]


def test_inspect_lists_conda_packages(packed: Packed) -> None:
    out = subprocess.run([ENVSHIP, "inspect", str(packed.store / "envs" /
                                                  f"{packed.a.env_id}.json")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "libfoo 1.0 h0_0, 2 relocated" in out.stdout
    assert "foocli 1.0 pyh0_0 (noarch)" in out.stdout


def test_changed_and_stray_files_are_packed_and_reported(
    conda_kit: CondaKit, tmp_path: Path, caplog: pytest.LogCaptureFixture, packed: Packed
) -> None:
    prefix = tmp_path / "c"
    install_env(conda_kit, prefix, tmp_path / "pkgs")
    data = prefix / "share" / "foo" / "data.txt"
    new = data.with_name("data.new")  # a new file: the installed one is a hard link
    new.write_text("edited after install\n")
    new.replace(data)
    conf = prefix / "etc" / "foo.conf"  # a file with a placeholder, edited by its user
    edited = conf.with_name("foo.new")
    edited.write_text(conf.read_text() + "verbose = 1\n")
    edited.replace(conf)
    (prefix / "share" / "notes.txt").write_text("nobody owns me\n")
    os.symlink("notes.txt", prefix / "share" / "notes-link")
    outside = tmp_path / "outside.txt"
    outside.write_text("out of the env\n")
    os.symlink(outside, prefix / "share" / "outside-link")
    # the installers' own files (rattler wrote CACHEDIR.TAG already), and user files that
    # only look like them: a folder named envs/ below share/, a CACHEDIR.TAG below the root
    assert (prefix / "CACHEDIR.TAG").read_text().startswith("Signature: ")
    (prefix / ".trash").mkdir()
    (prefix / ".trash" / "libfoo.so.1.0.0a1b2c.trash").write_text("rattler's trash\n")
    (prefix / "share" / "foo" / "data.txt.c~").write_text("conda's temp file\n")
    os.symlink("/opt/conda/bin/activate", prefix / "bin" / "activate")  # old conda's link
    (prefix / "share" / "envs").mkdir()
    (prefix / "share" / "envs" / "mine.yaml").write_text("a user file\n")
    (prefix / "share" / "CACHEDIR.TAG").write_text("not the installer's\n")
    with caplog.at_level(logging.INFO, logger="envship"):
        result = pack(prefix / "bin" / "python", cache_dir=tmp_path / "cache")
    text = caplog.text
    assert "share/foo/data.txt differs from its conda package" in text
    assert "etc/foo.conf differs from its conda package" in text
    assert f"{prefix}/share/notes.txt: owned by no conda package" in text
    assert (f"left out of {prefix}, the conda installers' own files: .trash/, CACHEDIR.TAG, "
            "bin/activate, share/foo/data.txt.c~\n") in text
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in warned if "CACHEDIR.TAG" in m and "share/" not in m]
    libfoo = {lay.digest for lay in result.manifest.layers
              if lay.package and lay.package.name == "libfoo"}
    assert libfoo.isdisjoint(lay.digest for lay in packed.a.manifest.layers)
    import tarfile

    with tarfile.open(result.blobs[libfoo.pop()]) as tar:  # packed as found, prefix undone
        got = tar.extractfile("etc/foo.conf").read()  # type: ignore[union-attr]
    assert got == f"datadir = {PLACEHOLDER}/share/foo\nverbose = 1\n".encode()
    strays = next(lay for lay in result.manifest.layers if lay.kind == "code")
    with tarfile.open(result.blobs[strays.digest]) as tar:
        link = tar.getmember("data/share/notes-link")
        out = tar.getmember("data/share/outside-link")
        assert tar.extractfile("data/share/notes.txt").read() == b"nobody owns me\n"  # type: ignore[union-attr]
        names = set(tar.getnames())
    assert {"data/share/envs/mine.yaml", "data/share/CACHEDIR.TAG"} <= names  # users' files
    assert not {n for n in names if "trash" in n or n.endswith(("~", "data/CACHEDIR.TAG",
                                                                 "bin/activate"))}
    assert link.issym() and link.linkname == "notes.txt"
    assert out.isfile() and out.size == len("out of the env\n")  # out of the env: its file
    pyfoo = {lay.digest for lay in result.manifest.layers
             if lay.package and lay.package.name == "pyfoo"}
    assert pyfoo <= {lay.digest for lay in packed.a.manifest.layers}  # the others still share
    diff = diff_manifests(packed.a.manifest, result.manifest)
    assert diff.layers["conda libfoo"] == "changed" and diff.layers["code"] == "added"
    assert {diff.layers[k] for k in ("python", "conda pyfoo", "conda foocli")} == {"same"}


def test_binary_relocation_keeps_length_and_refuses_a_longer_path() -> None:
    ph = "/opt/ph" + "_" * 40
    blob = b"\x7fELF" + ph.encode() + b"/share/x\0\0\0tail" + ph.encode() + b"\0"
    here = relocate(blob, ph, "/v/short", "binary", "lib/x.so")
    assert len(here) == len(blob) and b"/v/short/share/x\0" in here
    assert unprefix(here, "/v/short", ph, "binary") == blob  # packing undoes it exactly
    with pytest.raises(NodeError, match=r"lib/x.so: the env view path .* longer than the "
                                        r"47-character placeholder"):
        relocate(blob, ph, "/" + "v" * 60, "binary", "lib/x.so")
    text = relocate(f"#!{ph}/bin/python3\nx = '{ph}'\n".encode(), ph, "/" + "v" * 140,
                    "text", "bin/tool")
    assert text.startswith(b"#!/bin/sh\n")  # a shebang Linux would cut: a trampoline instead
    assert b"x = '/" + b"v" * 140 + b"'" in text


def test_prepared_view_environ_activates_the_prefix(packed: Packed, tmp_path: Path) -> None:
    from envship.node import prepare

    ref = str(packed.store / "envs" / f"{packed.a.env_id}.json")
    view = prepare(ref, cache_dir=tmp_path / "node")
    env = view.environ({"PATH": "/usr/bin:/bin", "VIRTUAL_ENV": "/elsewhere"})
    assert env["CONDA_PREFIX"] == view.path and "VIRTUAL_ENV" not in env
    assert env["FOO_DATA"] == f"{view.path}/share/foo"  # what Dask, Ray and remote start with
    assert env["PATH"].split(":")[0] == view.bin
    assert not (Path(view.path) / "pyvenv.cfg").exists()  # a prefix, not a venv
    out = subprocess.run([view.python, "-c", "import sys; print(sys.prefix)"], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == view.path


def test_without_the_package_cache_the_blobs_are_the_same(
    conda_kit: CondaKit, tmp_path: Path, packed: Packed
) -> None:
    import shutil

    prefix = tmp_path / "no-cache" / "env"
    install_env(conda_kit, prefix, tmp_path / "pkgs")
    shutil.rmtree(tmp_path / "pkgs")  # `conda clean --all`: link.source points nowhere
    result = pack(prefix / "bin" / "python", cache_dir=tmp_path / "cache")
    mine = {lay.package.name: lay for lay in result.manifest.layers if lay.package}
    theirs = {lay.package.name: lay for lay in packed.a.manifest.layers if lay.package}
    assert {k: v.digest for k, v in mine.items()} == {k: v.digest for k, v in theirs.items()}
    # noarch entry points read back from the scripts the installer wrote
    assert mine["foocli"].entry_points == ("foocli = foocli.main:run",)


def test_stale_package_pyc_of_a_same_size_source_is_compiled(
    conda_kit: CondaKit, tmp_path: Path, packed: Packed
) -> None:
    """A stdlib module edited after install to the same size and given its old mtime back:
    its pyc's timestamp stamp still matches, only the source hashing otherwise than the
    package records tells it is stale, so the pack compiles the edited source."""
    import marshal
    import tarfile

    prefix = tmp_path / "stale"
    install_env(conda_kit, prefix, tmp_path / "pkgs")
    mm = f"{sys.version_info[0]}.{sys.version_info[1]}"
    module = prefix / "lib" / f"python{mm}" / "colorsys.py"
    text, st = module.read_text(), module.stat()
    edited = module.with_name("colorsys.new")  # a new file: the installed one is a hard link
    edited.write_text(text.replace("ONE_THIRD = 1.0/3.0", "ONE_THIRD = 1.0/4.0"))
    assert edited.stat().st_size == st.st_size
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited.replace(module)
    result = pack(prefix / "bin" / "python", cache_dir=tmp_path / "cache")
    python = result.manifest.layers[0]
    with tarfile.open(result.blobs[python.digest]) as tar:
        pyc = tar.extractfile(  # type: ignore[union-attr]
            f"lib/python{mm}/__pycache__/colorsys.{sys.implementation.cache_tag}.pyc").read()
    scope: dict[str, object] = {}
    exec(marshal.loads(pyc[16:]), scope)
    assert scope["ONE_THIRD"] == 0.25
    # the rest of the package is the same: only this pyc (and the source) differ
    assert python.digest != packed.a.manifest.layers[0].digest
    others = {lay.digest for lay in result.manifest.layers[1:] if lay.package}
    assert others <= {lay.digest for lay in packed.a.manifest.layers}


def test_an_env_changed_by_hand_packs_what_runs_or_says_why(
    conda_kit: CondaKit, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What users do to conda envs: delete a file, pip-upgrade a conda package, move the
    prefix, leave out a package, damage a record. Each packs an env that runs at the new place
    (the prefix moved away first) or is refused in one line."""
    import shutil

    from envship.errors import PackError
    from kits.support import uv_bin
    from kits.wheelkit import write_wheel

    prefix = tmp_path / "env"
    pkgs = tmp_path / "pkgs"
    python = install_env(conda_kit, prefix, pkgs)
    (prefix / "etc" / "foo.conf").unlink()  # holds the install path: in a relocation table
    wheel = write_wheel(tmp_path / "wheels", "foocli", "2.0", {
        "foocli/__init__.py": b"", "foocli/main.py": b"def run():\n    print('foocli 2')\n"})
    subprocess.run([uv_bin(), "pip", "install", "-q", "--no-index", "--python", str(python),
                    "--break-system-packages", str(wheel)], check=True)  # over the noarch one
    with caplog.at_level(logging.WARNING, logger="envship"):
        result = pack(python, output=tmp_path / "store", cache_dir=tmp_path / "cache")
    missing = [r.getMessage() for r in caplog.records if "etc/foo.conf" in r.getMessage()]
    assert len(missing) == 1 and "missing" in missing[0]  # said once, not twice
    libfoo = next(lay for lay in result.manifest.layers
                  if lay.package and lay.package.name == "libfoo")
    assert "etc/foo.conf" not in {r.path for r in libfoo.relocations}
    versions = {d.name: (d.version, d.source) for d in result.manifest.distributions}
    assert versions["foocli"][0] == "2.0" and versions["foocli"][1] != "conda"
    assert versions["pyfoo"][1] == "conda"
    moved = tmp_path / "moved"
    prefix.rename(moved)
    ran = _exec(tmp_path / "store", result.env_id, tmp_path / "node", "python", "-c",
                "import pyfoo, foocli.main; foocli.main.run(); print(pyfoo.DATA)")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("foocli 2\n") and str(moved) not in ran.stdout

    # moved by hand, its package cache gone: the files still name the old path
    pkgs.rename(tmp_path / "pkgs-away")
    with pytest.raises(PackError, match="is not where conda installed it"):
        pack(moved / "bin" / "python", cache_dir=tmp_path / "cache2")
    (tmp_path / "pkgs-away").rename(pkgs)  # with the package cache, its own files are taken
    assert pack(moved / "bin" / "python", cache_dir=tmp_path / "cache2").env_id

    with pytest.raises(PackError, match="installed by a conda package"):
        pack(moved / "bin" / "python", exclude=["pyfoo"], cache_dir=tmp_path / "cache2")
    record = next((moved / "conda-meta").glob("pyfoo-*.json"))
    saved = record.read_text()
    for bad in ("../outside.txt", None):
        data = json.loads(saved)
        data["paths_data"]["paths"].append({"_path": bad} if bad else None)
        record.write_text(json.dumps(data))
        with pytest.raises(PackError, match="not a readable conda-meta record"):
            pack(moved / "bin" / "python", cache_dir=tmp_path / "cache2")
    record.write_text(saved)
    shutil.move(str(moved / "conda-meta"), str(tmp_path / "meta-away"))
    (moved / "conda-meta").mkdir()
    with pytest.raises(PackError, match="holds no package record"):
        pack(moved / "bin" / "python", cache_dir=tmp_path / "cache2")
