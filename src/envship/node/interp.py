"""Pick the interpreter an env runs on: its `python` layer, else a node Python of its version."""

from __future__ import annotations

import os
import subprocess
import sys

from .errors import NodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Interpreter", "find_node_python", "layer_interpreter", "layer_python", "needed_version"]

_PROBE = (
    "import os,sys;print(sys.implementation.name);print('%d.%d.%d' % sys.version_info[:3]);"
    "print(getattr(sys,'abiflags',''));"
    "print(os.path.realpath(getattr(sys,'_base_executable',None) or sys.executable))"
)


class Interpreter:
    """A real (non-venv) interpreter binary and the version it reports."""

    __slots__ = ("path", "version")

    def __init__(self, path: str, version: str) -> None:
        self.path = path  # resolved binary: pyvenv.cfg `home` is its directory
        self.version = version  # "3.11.7"

    def __repr__(self) -> str:
        return f"Interpreter({self.path!r}, {self.version!r})"


def needed_version(manifest: dict[str, Any]) -> tuple[str, str, str]:
    """(implementation, "3.X", abi) the env was built for."""
    py = manifest["python"]
    major_minor = ".".join(py["version"].split(".")[:2])
    return py["implementation"], major_minor, py["abi"]


def _abi(impl: str, version: str, abiflags: str) -> str:
    return "cp" + "".join(version.split(".")[:2]) + abiflags if impl == "cpython" else ""


def _probe(python: str) -> tuple[str, str, str, str] | None:
    """(implementation, version, abi, base binary) of *python*, or None if it does not run."""
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        impl = sys.implementation.name
        ver = ".".join(str(v) for v in sys.version_info[:3])
        base = getattr(sys, "_base_executable", None) or sys.executable
        return impl, ver, _abi(impl, ver, getattr(sys, "abiflags", "")), os.path.realpath(base)
    try:
        out = subprocess.run(
            [python, "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) != 4:
        return None
    impl, ver, flags, base = lines
    return impl, ver, _abi(impl, ver, flags), base


def _which(name: str) -> str | None:
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        cand = os.path.join(d or ".", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def find_node_python(manifest: dict[str, Any], explicit: str | None) -> Interpreter:
    """The node Python to run the env with; NodeError naming the version needed if none fits."""
    impl, mm, abi = needed_version(manifest)
    tried: list[str] = []

    def check(cand: str, origin: str) -> Interpreter | None:
        info = _probe(cand)
        if info is None:
            tried.append(f"{cand} ({origin}: does not run)")
            return None
        c_impl, c_ver, c_abi, base = info
        if c_impl == impl and ".".join(c_ver.split(".")[:2]) == mm and (
            not abi.startswith("cp") or c_abi == abi
        ):
            return Interpreter(base, c_ver)
        tried.append(f"{cand} ({origin}: {c_impl} {c_ver})")
        return None

    explicit = explicit or os.environ.get("ENVSHIP_PYTHON") or None
    if explicit:
        path = explicit if os.sep in explicit else (_which(explicit) or explicit)
        found = check(path, "--python/ENVSHIP_PYTHON")
        if found is None:
            raise _missing(impl, mm, abi, tried)
        return found
    seen: set[str] = set()
    for name in (f"python{mm}", "python3"):
        cand = _which(name)
        if cand and os.path.realpath(cand) not in seen:
            seen.add(os.path.realpath(cand))
            found = check(cand, "PATH")
            if found:
                return found
    if sys.executable and os.path.realpath(sys.executable) not in seen:
        found = check(sys.executable, "running")
        if found:
            return found
    raise _missing(impl, mm, abi, tried)


def _missing(impl: str, mm: str, abi: str, tried: list[str]) -> NodeError:
    name = "CPython" if impl == "cpython" else impl
    return NodeError(
        f"this env needs {name} {mm} ({abi}) and there is none on this node "
        f"(tried: {', '.join(tried) or 'nothing found on PATH'}); install Python {mm}, point "
        f"--python / ENVSHIP_PYTHON at one, or pack the env with --with-python"
    )


def layer_interpreter(major_minor: str, conda: bool) -> str:
    """Where a `python` layer holds its interpreter: ``bin/pythonX.Y`` in a conda python
    package (laid out as a prefix), ``python/bin/pythonX.Y`` in a ``--with-python`` layer."""
    return f"{'' if conda else 'python/'}bin/python{major_minor}"


def layer_python(layer_root: str, manifest: dict[str, Any]) -> Interpreter:
    """The interpreter inside an unpacked `python` layer."""
    _, mm, _ = needed_version(manifest)
    conda = any("package" in lay for lay in manifest["layers"] if lay["kind"] == "python")
    rel = layer_interpreter(mm, conda)
    path = os.path.join(layer_root, *rel.split("/"))
    if not os.path.isfile(path):
        raise NodeError(f"python layer {layer_root}: no {rel} in it")
    return Interpreter(path, manifest["python"]["version"])
