"""Real conda environments without a conda channel: conda packages built here, a local channel,
installed with py-rattler (the conda installer behind pixi) into real prefixes.

The channel holds five packages, built with gcc from small C sources and from this machine's
CPython (repackaged as conda-build would, with ``$ORIGIN`` run paths):

- ``python``: interpreter, stripped libpython, stdlib without test suites; its
  ``_sysconfigdata*.py`` holds the placeholder (text). libpython is *not* declared as holding a
  placeholder: the linker merges ``sys.version``'s string into the tail of the build prefix
  string, so rewriting it would blank the version.
- ``libfoo``: ``lib/libfoo.so.1.0`` (+ two symlinks) with a NUL-padded placeholder string
  compiled in (binary), the tool ``bin/foo`` linking it through ``$ORIGIN/../lib``, a header,
  ``etc/foo.conf`` (text placeholder), ``share/foo/data.txt`` and an activation script
  ``etc/conda/activate.d/libfoo.sh`` that exports ``FOO_DATA``.
- ``pyfoo``: an extension module linking libfoo through ``$ORIGIN/../../..`` and a ``.py``
  with a text placeholder.
- ``foocli`` (noarch python): ``site-packages/`` + ``python-scripts/``, an entry point in
  ``info/link.json``.
- ``python_abi``: a metapackage installing no file (pyfoo depends on it);
- a pip-installed wheel ``tinyextra`` on top (a console script), as users do in conda envs.
"""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kits.support import run, uv_bin
from kits.wheelkit import patchelf_bin, write_wheel

__all__ = ["PLACEHOLDER", "CondaKit", "build_channel", "cached_channel", "install_env",
           "can_build"]

# conda-build's build prefix is this long so that any install prefix fits a binary placeholder
PLACEHOLDER = ("/opt/condakit/_h_env" + "_placehold" * 30)[:255]
MM = f"{sys.version_info[0]}.{sys.version_info[1]}"
PY_VERSION = sys.version.split()[0]
_STDLIB_SKIP = frozenset({
    "test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "pydoc_data", "site-packages", "__pycache__", f"config-{MM}-x86_64-linux-gnu",
})
_TIMESTAMP = 1_700_000_000_000
_TAG = sys.implementation.cache_tag


@dataclass(frozen=True)
class CondaKit:
    """A built local channel and what it offers."""

    channel: Path  # holds linux-64/ and noarch/ with repodata.json
    wheel: Path  # the pip-installed wheel on top
    specs: tuple[str, ...] = ("python", "libfoo", "pyfoo", "foocli")


def can_build() -> str | None:
    """Why this machine cannot build the channel, or None."""
    base = Path(sys.base_prefix)
    if not (base / "lib" / f"libpython{MM}.so.1.0").exists():
        return "needs a CPython with a shared libpython"
    if shutil.which("gcc") is None or shutil.which("strip") is None:
        return "needs gcc and strip"
    try:
        import rattler  # noqa: F401
    except ImportError:
        return "needs py-rattler (pip install py-rattler)"
    return None


# -- sources ---------------------------------------------------------------------------------
_FOO_H = "const char *foo_datadir(void);\nint foo_answer(void);\n"
_LIBFOO_C = f"""\
#include "foo.h"
/* a binary placeholder: the prefix and a suffix in one NUL-padded string */
static const char datadir[512] = "{PLACEHOLDER}/share/foo";
const char *foo_datadir(void) {{ return datadir; }}
int foo_answer(void) {{ return 42; }}
"""
_FOO_C = """\
#include <stdio.h>
#include "foo.h"
int main(void) {
    char path[4096], buf[256];
    snprintf(path, sizeof path, "%s/data.txt", foo_datadir());
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "foo: cannot open %s\\n", path); return 3; }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    printf("foo %d %s", foo_answer(), buf);
    return 0;
}
"""
_EXT_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "foo.h"
static PyObject *answer(PyObject *s, PyObject *a) { return PyLong_FromLong(foo_answer()); }
static PyObject *datadir(PyObject *s, PyObject *a) { return PyUnicode_FromString(foo_datadir()); }
static PyMethodDef methods[] = {
    {"answer", answer, METH_NOARGS, 0}, {"datadir", datadir, METH_NOARGS, 0}, {0}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_pyfoo", 0, -1, methods};
PyMODINIT_FUNC PyInit__pyfoo(void) { return PyModule_Create(&mod); }
"""


def _dist_info(name: str, version: str, files: Mapping[str, bytes], prefix: str
               ) -> dict[str, bytes]:
    """A conda-style ``.dist-info`` (INSTALLER conda) for *files* under *prefix*."""
    info = f"{prefix}{name}-{version}.dist-info/"
    out = {
        f"{info}METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}INSTALLER": b"conda\n",
    }
    rows = [p[len(prefix):] for p in sorted({**files, **out}) if p.startswith(prefix)]
    out[f"{info}RECORD"] = "".join(f"{r},,\n" for r in rows + [info[len(prefix):] + "RECORD"]
                                   ).encode()
    return out


# -- packages --------------------------------------------------------------------------------
@dataclass
class _Pkg:
    name: str
    version: str
    build: str
    subdir: str
    files: dict[str, bytes]
    modes: dict[str, int]
    links: dict[str, str]  # path -> symlink target
    text: tuple[str, ...] = ()  # paths holding PLACEHOLDER, text mode
    binary: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    noarch: str | None = None
    entry_points: tuple[str, ...] = ()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_package(pkg: _Pkg, channel: Path) -> dict[str, object]:
    """Write ``<name>-<version>-<build>.tar.bz2`` and return its repodata record."""
    paths = []
    for p in sorted(set(pkg.files) | set(pkg.links)):
        if p in pkg.links:
            paths.append({"_path": p, "path_type": "softlink",
                          "sha256": _sha(pkg.links[p].encode()), "size_in_bytes": 0})
            continue
        data = pkg.files[p]
        row: dict[str, object] = {"_path": p, "path_type": "hardlink", "sha256": _sha(data),
                                  "size_in_bytes": len(data)}
        if p in pkg.text or p in pkg.binary:
            assert PLACEHOLDER.encode() in data, p
            row["prefix_placeholder"] = PLACEHOLDER
            row["file_mode"] = "text" if p in pkg.text else "binary"
        paths.append(row)
    index = {"name": pkg.name, "version": pkg.version, "build": pkg.build, "build_number": 0,
             "depends": list(pkg.depends), "subdir": pkg.subdir, "license": "MIT",
             "timestamp": _TIMESTAMP}
    if pkg.noarch:
        index["noarch"] = pkg.noarch
    info: dict[str, bytes] = {
        "info/index.json": json.dumps(index, indent=2).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=2).encode(),
        "info/files": "".join(p + "\n" for p in sorted(set(pkg.files) | set(pkg.links))).encode(),
    }
    has_prefix = [f'{PLACEHOLDER} {"text" if p in pkg.text else "binary"} {p}\n'
                  for p in sorted(pkg.text + pkg.binary)]
    if has_prefix:
        info["info/has_prefix"] = "".join(has_prefix).encode()
    if pkg.noarch == "python":
        link = {"noarch": {"type": "python", "entry_points": list(pkg.entry_points)},
                "package_metadata_version": 1}
        info["info/link.json"] = json.dumps(link, indent=2).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted({**pkg.files, **info, **pkg.links}):
            ti = tarfile.TarInfo(p)
            ti.mtime = _TIMESTAMP // 1000
            if p in pkg.links:
                ti.type, ti.linkname = tarfile.SYMTYPE, pkg.links[p]
                tar.addfile(ti)
                continue
            data = pkg.files.get(p, info.get(p, b""))
            ti.size, ti.mode = len(data), pkg.modes.get(p, 0o644)
            tar.addfile(ti, io.BytesIO(data))
    blob = bz2.compress(buf.getvalue(), 1)
    fname = f"{pkg.name}-{pkg.version}-{pkg.build}.tar.bz2"
    (channel / pkg.subdir).mkdir(parents=True, exist_ok=True)
    (channel / pkg.subdir / fname).write_bytes(blob)
    record = {k: v for k, v in index.items()}
    record.update(md5=hashlib.md5(blob).hexdigest(), sha256=_sha(blob), size=len(blob),
                  fn=fname)
    return record


def _timestamp_pyc(source: bytes, rel: str) -> bytes | None:
    """The timestamp pyc conda-build would write for *source* (mtime: the package's)."""
    from importlib._bootstrap_external import _code_to_timestamp_pyc  # type: ignore[attr-defined]

    try:
        code = compile(source, rel, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return bytes(_code_to_timestamp_pyc(code, _TIMESTAMP // 1000, len(source)))


def _python_pkg(work: Path) -> _Pkg:
    base = Path(sys.base_prefix)
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    exe = work / f"python{MM}"
    shutil.copyfile(base / "bin" / f"python{MM}", exe)
    run([patchelf_bin(), "--set-rpath", "$ORIGIN/../lib", str(exe)])
    libpy = work / f"libpython{MM}.so.1.0"
    shutil.copyfile(base / "lib" / libpy.name, libpy)
    run(["strip", "--strip-unneeded", str(libpy)])
    run([patchelf_bin(), "--remove-rpath", str(libpy)])
    files[f"bin/python{MM}"], modes[f"bin/python{MM}"] = exe.read_bytes(), 0o755
    files[f"lib/{libpy.name}"], modes[f"lib/{libpy.name}"] = libpy.read_bytes(), 0o755
    stdlib = base / "lib" / f"python{MM}"
    text: list[str] = []
    old = str(base).encode()
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = sorted(d for d in dirnames if d not in _STDLIB_SKIP)
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if name.endswith((".pyc", ".pyo")) or full.is_symlink():
                continue
            rel = f"lib/python{MM}/{full.relative_to(stdlib).as_posix()}"
            if name.endswith(".so"):
                tmp = work / name
                shutil.copyfile(full, tmp)
                run(["strip", "--strip-unneeded", str(tmp)])
                run([patchelf_bin(), "--remove-rpath", str(tmp)])
                files[rel], modes[rel] = tmp.read_bytes(), 0o755
                continue
            data = full.read_bytes()
            if name.startswith("_sysconfigdata") and old in data:
                data = data.replace(old, PLACEHOLDER.encode())
                text.append(rel)
            files[rel] = data
            if name.endswith(".py"):  # bytecode, as conda-forge's python package carries it
                pyc = _timestamp_pyc(data, rel)
                if pyc is not None:
                    head, _, tail = rel.rpartition("/")
                    files[f"{head}/__pycache__/{tail[:-3]}.{_TAG}.pyc"] = pyc
    files[f"lib/python{MM}/site-packages/README.txt"] = b"conda site-packages\n"
    links = {"bin/python3": f"python{MM}", "bin/python": f"python{MM}",
             f"lib/libpython{MM}.so": libpy.name}
    return _Pkg("python", PY_VERSION, "h0_0_cpython", "linux-64", files, modes, links,
                text=tuple(text))


def _c_pkgs(work: Path) -> tuple[_Pkg, _Pkg]:
    (work / "foo.h").write_text(_FOO_H)
    (work / "libfoo.c").write_text(_LIBFOO_C)
    (work / "foo.c").write_text(_FOO_C)
    (work / "ext.c").write_text(_EXT_C)
    lib = work / "libfoo.so.1.0"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wl,-soname,libfoo.so.1", "-o", str(lib),
                    str(work / "libfoo.c")], check=True)
    os.symlink(lib.name, work / "libfoo.so")
    tool = work / "foo"
    subprocess.run(["gcc", "-O2", "-o", str(tool), str(work / "foo.c"), f"-L{work}", "-lfoo",
                    "-Wl,-rpath,$ORIGIN/../lib"], check=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    ext = work / f"_pyfoo{suffix}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", f"-I{sysconfig.get_paths()['include']}",
                    f"-I{work}", "-o", str(ext), str(work / "ext.c"), f"-L{work}", "-lfoo",
                    "-Wl,-rpath,$ORIGIN/../../.."], check=True)
    activate = b'export FOO_DATA="${CONDA_PREFIX}/share/foo"\n'
    libfoo = _Pkg(
        "libfoo", "1.0", "h0_0", "linux-64",
        files={"lib/libfoo.so.1.0": lib.read_bytes(), "bin/foo": tool.read_bytes(),
               "include/foo.h": _FOO_H.encode(),
               "etc/foo.conf": f"datadir = {PLACEHOLDER}/share/foo\n".encode(),
               "share/foo/data.txt": b"data of libfoo\n",
               "etc/conda/activate.d/libfoo.sh": activate},
        modes={"lib/libfoo.so.1.0": 0o755, "bin/foo": 0o755},
        links={"lib/libfoo.so.1": "libfoo.so.1.0", "lib/libfoo.so": "libfoo.so.1.0"},
        text=("etc/foo.conf",), binary=("lib/libfoo.so.1.0",),
    )
    sp = f"lib/python{MM}/site-packages/"
    pyfiles = {
        f"{sp}pyfoo/__init__.py": b"from ._pyfoo import answer, datadir\nfrom .paths import DATA\n",
        f"{sp}pyfoo/paths.py": f'DATA = "{PLACEHOLDER}/share/foo"\n'.encode(),
        f"{sp}pyfoo/_pyfoo{suffix}": ext.read_bytes(),
    }
    pyfiles.update(_dist_info("pyfoo", "1.0", pyfiles, sp))
    # a link into another package (libfoo), relative within the prefix
    links = {f"{sp}pyfoo/libfoo.so.1": "../../../libfoo.so.1"}
    pyfoo = _Pkg("pyfoo", "1.0", f"py{MM.replace('.', '')}h0_0", "linux-64", pyfiles,
                 {f"{sp}pyfoo/_pyfoo{suffix}": 0o755}, links, text=(f"{sp}pyfoo/paths.py",),
                 depends=(f"python {MM}.*", "libfoo 1.0.*", f"python_abi {MM}.*"))
    return libfoo, pyfoo


def _noarch_pkg() -> _Pkg:
    files = {
        "site-packages/foocli/__init__.py": b"",
        "site-packages/foocli/main.py": (
            b"import sys\n\ndef run():\n    print('foocli', sys.prefix)\n    return 0\n"),
        "python-scripts/foocli-hello": b"#!/bin/sh\necho hello from foocli\n",
    }
    files.update(_dist_info("foocli", "1.0", files, "site-packages/"))
    return _Pkg("foocli", "1.0", "pyh0_0", "noarch", files,
                {"python-scripts/foocli-hello": 0o755}, {}, depends=("python",),
                noarch="python", entry_points=("foocli = foocli.main:run",))


def build_channel(root: Path) -> CondaKit:
    """Build the packages and a local channel under *root* (``root/channel``)."""
    work = root / "work"
    work.mkdir(parents=True)
    channel = root / "channel"
    libfoo, pyfoo = _c_pkgs(work)
    records: dict[str, dict[str, dict[str, object]]] = {"linux-64": {}, "noarch": {}}
    abi = _Pkg("python_abi", MM, f"2_cp{MM.replace('.', '')}", "linux-64", {}, {}, {})
    for pkg in (_python_pkg(work), libfoo, pyfoo, _noarch_pkg(), abi):
        rec = _write_package(pkg, channel)
        records[pkg.subdir][str(rec.pop("fn"))] = rec
    for subdir, pkgs in records.items():
        (channel / subdir).mkdir(parents=True, exist_ok=True)
        repodata = {"info": {"subdir": subdir}, "packages": pkgs, "packages.conda": {},
                    "repodata_version": 1}
        (channel / subdir / "repodata.json").write_text(json.dumps(repodata, indent=1))
    wheel = write_wheel(root / "wheels", "tinyextra", "0.1",
                        {"tinyextra/__init__.py": b"def main():\n    print('tinyextra ok')\n"},
                        console_scripts={"tinyextra": "tinyextra:main"})
    return CondaKit(channel, wheel)


def install_env(kit: CondaKit, prefix: Path, cache: Path) -> Path:
    """Install the kit's packages into *prefix* with py-rattler, then the wheel with uv pip;
    returns the prefix's interpreter."""
    import rattler

    async def _go() -> None:
        records = await rattler.solve([kit.channel.as_uri()], list(kit.specs),
                                      platforms=["linux-64", "noarch"])
        await rattler.install(records, prefix, cache_dir=cache, show_progress=False,
                              )

    asyncio.run(_go())
    python = prefix / "bin" / "python"
    run([uv_bin(), "pip", "install", "-q", "--no-index", "--python", str(python),
         "--break-system-packages", str(kit.wheel)])
    return python


def cached_channel(parent: Path) -> CondaKit:
    """The channel built once under *parent* (kept across test sessions), keyed by this
    module's source and the interpreter it repackages; built now if missing."""
    key = hashlib.sha256(Path(__file__).read_bytes() + sys.version.encode()
                         + sys.base_prefix.encode()).hexdigest()[:16]
    root = parent / f"condakit-{key}"
    wheel = root / "wheels" / "tinyextra-0.1-py3-none-any.whl"
    if (root / "channel" / "noarch" / "repodata.json").is_file() and wheel.is_file():
        return CondaKit(root / "channel", wheel)
    tmp = parent / f".condakit-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    build_channel(tmp)
    try:
        os.rename(tmp, root)
    except OSError:  # another session finished first: use its channel
        shutil.rmtree(tmp, ignore_errors=True)
    return CondaKit(root / "channel", wheel)
