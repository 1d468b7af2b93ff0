"""Turns a function call into a payload an env's interpreter can run, with its local code."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata as md
import io
import json
import logging
import os
import sys
import sysconfig
import tempfile
import types
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from ..errors import RemoteError
from ..packing.manifest import Manifest

__all__ = ["FORMAT", "Payload", "build_payload", "check_compatible", "local_modules"]

log = logging.getLogger(__name__)
FORMAT = "envship.call/1"


@dataclass(frozen=True)
class Payload:
    data: bytes  # what the runner reads on stdin
    by_value: tuple[str, ...]  # local modules pickled by value
    size: int


def _env_cloudpickle(manifest: Manifest) -> str | None:
    for dist in manifest.distributions:
        if dist.name.lower() == "cloudpickle":
            return dist.version
    return None


def check_compatible(manifest: Manifest) -> bool:
    """Raise RemoteError when the env cannot load what this client pickles.

    Returns True when the env lacks cloudpickle and the payload must carry the client's copy.
    """
    client = f"{sys.version_info.major}.{sys.version_info.minor}"
    if manifest.python.major_minor != client:
        raise RemoteError(
            f"this client runs Python {client} but the env runs Python "
            f"{manifest.python.major_minor}: pickled functions only move between equal "
            f"major.minor versions; run the client from a Python {manifest.python.major_minor} env."
        )
    env_cp = _env_cloudpickle(manifest)
    if env_cp is None:
        return True
    mine = cloudpickle.__version__
    if env_cp.split(".")[0] != mine.split(".")[0]:
        raise RemoteError(
            f"cloudpickle {mine} here, {env_cp} in the env: major versions must match; "
            f"install cloudpickle=={env_cp} in this client "
            f"(or ship the env with cloudpickle {mine})."
        )
    return False


def _excluded_roots() -> list[str]:
    """Directories whose modules are assumed present in the env: stdlib and site-packages."""
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return sorted(os.path.realpath(r) for r in roots if r)


@functools.lru_cache(maxsize=1)
def _editable_roots() -> tuple[str, ...]:
    """Source trees of editable installs: their modules travel in the env's code layer."""
    roots = []
    for dist in md.distributions():
        text = dist.read_text("direct_url.json")
        if not text:
            continue
        try:
            info = json.loads(text)
        except ValueError:
            continue
        url = info.get("url", "")
        if url.startswith("file://"):
            roots.append(os.path.realpath(url[len("file://") :]))
    return tuple(roots)


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _in_editable_package(name: str, real: str, roots: Iterable[str]) -> bool:
    """Is module *name* (file *real*) one an editable project installs, so in the env's code
    layer: under the project, as a package or module at its root or in ``src/``? A script
    folder of the project (``scripts/tools.py``) is not installed."""
    top = name.partition(".")[0]
    for root in roots:
        if not _under(real, [root]):
            continue
        for base in (root, os.path.join(root, "src")):
            if _under(real, [os.path.join(base, top)]) or real == os.path.join(base, top + ".py"):
                return True
    return False


def _code_names(code: types.CodeType) -> set[str]:
    """Global names *code* uses, its nested functions, lambdas and comprehensions included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _referenced_modules(obj: Any) -> set[str]:
    """Top-level names of modules a function, class or module refers to through its globals;
    through the functions and classes of ``__main__`` it uses too (``__main__`` itself is not
    walked as a whole: a script's globals are not what one function needs)."""
    names: set[str] = set()
    todo: list[Any] = [obj]
    done: set[int] = set()
    while todo:
        current = todo.pop()
        if id(current) in done:
            continue
        done.add(id(current))
        values: list[Any] = []
        if isinstance(current, types.ModuleType):
            values = list(vars(current).values())
        else:
            mod = getattr(current, "__module__", None)
            if isinstance(mod, str):
                names.add(mod)
            glb = getattr(current, "__globals__", None)
            if isinstance(glb, dict):
                code = getattr(current, "__code__", None)
                used = _code_names(code) if code is not None else set(glb)
                values = [glb[n] for n in used if n in glb]
            for cell in getattr(current, "__closure__", None) or ():
                with contextlib.suppress(ValueError):
                    values.append(cell.cell_contents)
            if isinstance(current, type):  # a __main__ class: what its methods use
                values.extend(getattr(v, "__func__", v) for v in vars(current).values())
        for value in values:
            if isinstance(value, types.ModuleType):
                names.add(value.__name__)
                continue
            mod = getattr(value, "__module__", None)
            if isinstance(mod, str):
                names.add(mod)
                if mod == "__main__" and isinstance(value, (types.FunctionType, type)):
                    todo.append(value)
    return names


def _argument_modules(items: Any, mode: str) -> set[str]:
    """Modules of the arguments' types (and of functions passed as arguments), one level into
    lists, tuples, sets and dicts: an object of a local class needs its module too."""
    top = [*items[0], *items[1].values()] if mode == "call" else list(items)
    seen_types: set[type] = set()
    names: set[str] = set()
    for value in top:
        inner = value.values() if isinstance(value, dict) else value if isinstance(
            value, (list, tuple, set, frozenset)) else ()
        for v in (value, *inner):
            if isinstance(v, (types.FunctionType, type)):
                names |= _referenced_modules(v)
            elif type(v) not in seen_types:
                seen_types.add(type(v))
                names |= _referenced_modules(type(v))
    return names


def local_modules(func: Any, also: Iterable[str] = ()) -> list[str]:
    """Modules reachable from *func* (and the modules *also* names) whose files are local code
    not shipped in the env."""
    skip = _excluded_roots()
    editable = _editable_roots()
    found: list[str] = []
    seen: set[str] = set()
    todo = [*_referenced_modules(func), *also]
    while todo:
        name = todo.pop()
        if name in seen or name == "__main__":
            continue
        seen.add(name)
        mod = sys.modules.get(name)
        file = getattr(mod, "__file__", None) if mod else None
        if not file:
            continue
        real = os.path.realpath(file)
        if _under(real, skip) or _in_editable_package(name, real, editable):
            continue
        found.append(name)
        todo.extend(_referenced_modules(mod))
    return sorted(found)


def _cloudpickle_zip() -> bytes:
    """The client's cloudpickle package as a zip, for envs that lack it (pure Python)."""
    pkg = Path(cloudpickle.__file__).parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(pkg.glob("*.py")):
            zf.write(path, f"cloudpickle/{path.name}")
    return buf.getvalue()


def _cached_cloudpickle_zip(cache_dir: Path) -> str:
    """Path of this client's cloudpickle zip under *cache_dir*, written once (atomically)."""
    data = _cloudpickle_zip()
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = cache_dir / "remote" / f"cloudpickle-{cloudpickle.__version__}-{digest}.zip"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return str(path)


def build_payload(
    manifest: Manifest, func: Any, items: Any, mode: str, *, local_cache: Path | None = None
) -> Payload:
    """Pickle ``(func, items, mode)`` with local modules by value, framed for the runner.

    When the env lacks cloudpickle, the payload carries this client's copy; with
    *local_cache* (runner on this machine) it refers to a copy kept there instead.
    """
    if not callable(func):
        raise RemoteError(f"{func!r} is not callable")
    carry_cloudpickle = check_compatible(manifest)
    by_value = local_modules(func, _argument_modules(items, mode))
    if by_value:
        log.warning("pickling local modules by value: %s", ", ".join(by_value))
    registered = []
    try:
        for name in by_value:
            module = sys.modules[name]
            try:
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
            except ValueError:
                pass
        body = cloudpickle.dumps((func, items, mode))
    except Exception as exc:
        name = getattr(func, "__qualname__", func)
        raise RemoteError(f"could not pickle {name!r}: {exc}") from exc
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)
    header: dict[str, Any] = {"format": FORMAT, "body": len(body)}
    cp_zip = b""
    if carry_cloudpickle and local_cache is not None:
        header["cloudpickle_path"] = _cached_cloudpickle_zip(local_cache)
    elif carry_cloudpickle:
        cp_zip = _cloudpickle_zip()
    header["cloudpickle_zip"] = len(cp_zip)
    data = json.dumps(header).encode() + b"\n" + cp_zip + body
    return Payload(data, tuple(by_value), len(data))
