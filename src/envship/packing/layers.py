"""Split a snapshot into layer plans: which file goes where (python / deps / code)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import PackError
from .sources.conda import conda_shared_libs
from .sources.snapshot import DistInfo, Snapshot
from .sources.sourcetree import SourceWalker, root_entries

__all__ = ["LayerEntry", "LayerPlan", "plan_layers", "plan_python"]

log = logging.getLogger(__name__)

# Installer bookkeeping that only describes the developer's machine: left out of code layers.
_CHECKOUT_POINTERS = ("direct_url.json", "uv_cache.json")


class LayerEntry(NamedTuple):
    """One regular file of a layer: where it is read from and how it is transformed.

    A NamedTuple rather than a frozen dataclass: big environments make tens of thousands.
    """

    arcname: str  # path inside the layer, e.g. "site-packages/numpy/__init__.py"
    source: str  # absolute path read when archiving
    transform: str = ""  # "" (copy) | "shebang" (python shebang -> /usr/bin/env python) | "record"
    known_hash: str | None = None  # hash recorded by the installer (saves re-hashing)
    record_keep: frozenset[str] = frozenset()  # transform == "record": RECORD rows kept as is
    record_blank: frozenset[str] = frozenset()  # ... and rows kept without hash/size


@dataclass(frozen=True)
class LayerPlan:
    """What one layer holds, and how its build-cache fingerprint is computed."""

    kind: str  # "python" | "deps" | "code"
    entries: tuple[LayerEntry, ...]  # sorted by arcname, unique
    fingerprint_mode: str  # "record" (RECORD hashes, else stat) | "content" | "stat"
    salt: tuple[str, ...] = field(default=())  # other fingerprint inputs (abi, platform, ...)


_COMPILED = (".pyc", ".pyo")
_PYCACHE = f"{os.sep}__pycache__{os.sep}"


class _Builder:
    """Collects entries for one layer, first writer of an arcname wins."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.entries: dict[str, LayerEntry] = {}
        self.site_prefixes = [(sp + os.sep, "site-packages/") for sp in snapshot.site_packages]
        self.env_prefix = snapshot.prefix + os.sep
        self.scripts = snapshot.scripts

    def add(self, entry: LayerEntry) -> None:
        if entry.arcname in self.entries:
            log.debug("%s provided twice; keeping %s", entry.arcname,
                      self.entries[entry.arcname].source)
            return
        self.entries[entry.arcname] = entry

    def arcname(self, path: str) -> str | None:
        for prefix, arc in self.site_prefixes:
            if path.startswith(prefix):
                return arc + path[len(prefix):].replace(os.sep, "/")
        if path.startswith(self.env_prefix):
            return "data/" + path[len(self.env_prefix):].replace(os.sep, "/")
        return None

    def add_dist_files(self, dist: DistInfo, *, drop_pointers: bool) -> None:
        """The distribution's RECORD files, minus compiled files, console scripts, pointers."""
        keep: set[str] = set()
        blank: set[str] = set()
        record_file = None
        names = dist.script_names
        pointers = dist.pointer_files
        meta = dist.metadata_dir + os.sep
        scripts = self.scripts + os.sep
        for f in dist.files:
            path = f.path
            if path.endswith(_COMPILED) or _PYCACHE in path or (pointers and path in pointers):
                continue
            if path.startswith(meta):
                rest = path[len(meta):]
                if rest == "RECORD":
                    record_file = f
                    continue
                if drop_pointers and rest in _CHECKOUT_POINTERS:
                    continue
            arc = self.arcname(path)
            if arc is None:
                log.warning("%s: %s is outside the environment; leaving it out", dist.name, path)
                continue
            script = path[len(scripts):] if path.startswith(scripts) else None
            if script is not None and os.sep not in script:
                if script in names:
                    continue  # console-script wrapper: the node writes its own from entry_points
                self.add(LayerEntry(arc, path, "shebang", f.hash))
                blank.add(f.rel)
            else:
                self.add(LayerEntry(arc, path, "", f.hash))
                keep.add(f.rel)
        if record_file is not None:
            arc = self.arcname(record_file.path)
            if arc is not None:
                keep.add(record_file.rel)
                self.add(LayerEntry(arc, record_file.path, "record", None, frozenset(keep),
                                    frozenset(blank)))

    def add_tree(self, entries: Iterable[tuple[str, str]]) -> None:
        for arc, src in entries:
            self.add(LayerEntry(arc, src))

    def plan(self, kind: str, mode: str, salt: Sequence[str]) -> LayerPlan:
        entries = tuple(self.entries[k] for k in sorted(self.entries, key=_sort_key))
        return LayerPlan(kind, entries, mode, tuple(salt))


def _sort_key(arcname: str) -> str:
    # Same order as comparing path components: "\0" sorts below every character of a name.
    return arcname.replace("/", "\0")


def plan_layers(
    snapshot: Snapshot, kept: Sequence[DistInfo], salt: Sequence[str] = ()
) -> list[LayerPlan]:
    """The deps and code layer plans (either may be empty) for the kept distributions."""
    deps = _Builder(snapshot)
    code = _Builder(snapshot)
    walker = SourceWalker()
    for dist in kept:
        if dist.source == "editable":
            code.add_dist_files(dist, drop_pointers=True)
            if dist.egg_link:  # the egg-info lives in the checkout: materialise it
                base = "site-packages/" + os.path.basename(dist.metadata_dir)
                code.add_tree(walker.walk_dir(dist.metadata_dir, base, metadata=True))
            for root in dist.roots:
                code.add_tree(root_entries(walker, root))
        elif dist.source == "local":
            code.add_dist_files(dist, drop_pointers=True)
        else:
            deps.add_dist_files(dist, drop_pointers=False)
    for path in snapshot.stray:
        arc = deps.arcname(path)
        if arc is None:
            continue
        if os.path.isdir(path):
            deps.add_tree(walker.walk_dir(path, arc, metadata=True))
        else:
            deps.add(LayerEntry(arc, path))
    return [deps.plan("deps", "record", salt), code.plan("code", "content", salt)]


_STDLIB_SKIP = frozenset(
    {"test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "ensurepip",
     "site-packages", "dist-packages", "__pycache__"}
)


def plan_python(snapshot: Snapshot) -> LayerPlan:
    """The base interpreter: bin/python3.X, libpython, the stdlib without tests and GUI bits."""
    base = snapshot.base_prefix
    mm = snapshot.python.major_minor
    b = _Builder(snapshot)
    exe = os.path.join(base, "bin", f"python{mm}")
    if not os.path.exists(exe):
        raise PackError(
            f"--with-python: no interpreter at {exe}; the base prefix {base} does not look "
            "like a relocatable Python install (use one from python-build-standalone / uv)."
        )
    b.add(LayerEntry(f"python/bin/python{mm}", os.path.realpath(exe)))
    libdir = snapshot.libdir
    if libdir.startswith(base + os.sep) and os.path.isdir(libdir):
        rel = os.path.relpath(libdir, base).replace(os.sep, "/")
        for name in sorted(os.listdir(libdir)):
            full = os.path.join(libdir, name)
            # the real file only: its SONAME is what the interpreter asks the loader for
            if name.startswith("libpython") and ".so" in name and not os.path.islink(full):
                b.add(LayerEntry(f"python/{rel}/{name}", full))
    stdlib = snapshot.stdlib
    if not stdlib.startswith(base + os.sep):
        raise PackError(f"--with-python: the stdlib {stdlib} is not inside {base}")
    top = "python/" + os.path.relpath(stdlib, base).replace(os.sep, "/")
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = [d for d in dirnames if d not in _STDLIB_SKIP]
        rel = os.path.relpath(dirpath, stdlib)
        arcdir = top if rel == "." else f"{top}/{rel.replace(os.sep, '/')}"
        for name in filenames:
            if name.endswith((".pyc", ".pyo", ".a")):  # .a: static libpython for embedding
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full) and not os.path.exists(full):
                continue
            b.add(LayerEntry(f"{arcdir}/{name}", full))
    conda_libs = conda_shared_libs(snapshot)
    lib_arc = f"python/{os.path.relpath(libdir, base).replace(os.sep, '/')}" if (
        libdir.startswith(base + os.sep)) else "python/lib"
    for name, real in conda_libs:
        b.add(LayerEntry(f"{lib_arc}/{name}", real))
    salt = (base, snapshot.python.version) + (("conda",) if conda_libs else ())
    return b.plan("python", "stat", salt)
