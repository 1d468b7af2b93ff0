"""Split a snapshot into layer plans: which file goes where (python / one per dist / code)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import PackError
from .sources.conda import CondaPackage
from .sources.snapshot import DistInfo, Snapshot
from .sources.sourcetree import SourceWalker, root_entries

__all__ = ["LayerEntry", "LayerPlan", "plan_layers", "plan_python", "pyc_arcname", "sort_key"]

log = logging.getLogger(__name__)

# Written by the installer, not the wheel: which tool installed it (pip / uv / conda), whether
# the user asked for it or it came as a dependency, where it was installed from (PEP 610's
# direct_url.json: a checkout, or a wheel's path on the packing machine, in each installer's
# own JSON layout) and uv's cache note (with the install time) for a wheel from a local
# directory or --find-links. Left out (with their RECORD rows) so a blob depends on the wheel
# and the interpreter only, whoever installed it, when and from where.
_INSTALLER_MARKS = ("INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json")


class LayerEntry(NamedTuple):
    """One regular file of a layer: where it is read from and how it is transformed.

    A NamedTuple rather than a frozen dataclass: big environments make tens of thousands.
    """

    arcname: str  # path inside the layer, e.g. "site-packages/numpy/__init__.py"
    source: str  # absolute path read when archiving
    # "" (copy) | "shebang" (python shebang -> /usr/bin/env python) | "record" |
    # "symlink" (source is the link's target) | "unprefix" (a conda file: see relocate)
    transform: str = ""
    known_hash: str | None = None  # hash recorded by the installer (saves re-hashing)
    record_keep: frozenset[str] = frozenset()  # transform == "record": RECORD rows kept as is
    record_blank: frozenset[str] = frozenset()  # ... and rows kept without hash/size
    relocate: tuple[str, str, str] | None = None  # "unprefix": (prefix, placeholder, mode)


@dataclass(frozen=True)
class LayerPlan:
    """What one layer holds, and how its build-cache fingerprint is computed."""

    kind: str  # "python" | "conda" | "dist" | "code"
    entries: tuple[LayerEntry, ...]  # sorted by arcname, unique
    fingerprint_mode: str  # "record" (RECORD hashes, else stat) | "content" | "stat"
    salt: tuple[str, ...] = field(default=())  # other fingerprint inputs (abi, platform, ...)
    dists: tuple[str, ...] = ()  # "name==version" of the distributions it holds, sorted
    package: CondaPackage | None = None  # conda layers (and a conda env's python layer)

    @property
    def label(self) -> str:
        """How logs and progress name it: ``dist numpy==2.3.4``, ``code``, ``python``."""
        if self.package is not None:
            return f"{self.kind} {self.package.label}"
        return f"{self.kind} {', '.join(self.dists)}" if self.dists else self.kind

    @property
    def py_sources(self) -> tuple[LayerEntry, ...]:
        """The modules bytecode is compiled for: the ``.py`` files under ``site-packages/``
        (the stdlib for the python layer), but not those of test suites (see
        :func:`is_test_module`)."""
        return tuple(self._py_sources())

    @property
    def has_py_sources(self) -> bool:
        """Whether :attr:`py_sources` is not empty, found without listing them all."""
        return any(True for _ in self._py_sources())

    def _py_sources(self) -> Iterator[LayerEntry]:
        # a conda file holding a placeholder is rewritten on the node: no bytecode of it
        moved = {r[0] for r in self.package.relocations} if self.package is not None else ()
        return (e for e in self.entries if e.arcname.endswith(".py") and not e.transform
                and module_root(e.arcname) is not None and not is_test_module(e.arcname)
                and e.arcname not in moved)


# Test suites shipped inside packages (pandas/tests, scipy/*/tests, numpy/_core/tests: 45 % of
# the source bytes of numpy + pandas + pyarrow + scikit-learn) are not byte-compiled: they are
# almost never imported on a cluster, and compiling them would double the time of a cold pack.
# They are still packed as .py files; a node that imports one compiles it in memory.
_TEST_DIRS = frozenset({"test", "tests"})


def is_test_module(arcname: str) -> bool:
    """True for a module inside a ``test/`` or ``tests/`` directory (at any depth)."""
    return any(part in _TEST_DIRS for part in arcname.split("/")[:-1])


def module_root(arcname: str) -> str | None:
    """The directory of *arcname* that is on ``sys.path`` (``site-packages/``, or the stdlib
    ``python/lib/pythonX.Y/``; in conda layers ``lib/pythonX.Y/[site-packages/]``), or None
    when the file is not importable from one."""
    if arcname.startswith("site-packages/"):
        return "site-packages/"
    for top, depth in (("python/lib/python", 3), ("lib/python", 2)):
        if arcname.startswith(top):
            parts = arcname.split("/")
            head = "/".join(parts[:depth]) + "/"
            if head.count(".") != 1:
                return None
            if len(parts) > depth + 1 and parts[depth] == "site-packages":
                return head + "site-packages/" if depth == 2 else None
            return head if "site-packages" not in arcname else None
    return None


def pyc_arcname(py_arcname: str, cache_tag: str) -> str:
    """``site-packages/a/b.py`` -> ``site-packages/a/__pycache__/b.<cache_tag>.pyc``
    (importlib.util.cache_from_source's rule)."""
    head, _, tail = py_arcname.rpartition("/")
    base = tail.rpartition(".")[0] or tail
    return f"{head}/__pycache__/{base}.{cache_tag}.pyc"


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
        self.rels: dict[str, str] = {}  # arcname -> its RECORD row (for conflict resolution)
        self.record_arc: str | None = None

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

    def add_dist_files(self, dist: DistInfo) -> None:
        """The distribution's RECORD files, minus compiled files, console scripts and the
        installer's own marks (:data:`_INSTALLER_MARKS`)."""
        keep: set[str] = set()
        blank: set[str] = set()
        record_file = None
        names = dist.script_names
        pointers = dist.pointer_files
        meta = dist.metadata_dir + os.sep
        scripts = self.scripts + os.sep
        # ~10,000 files in a big env: the common case (a file under the first site-packages)
        # is decided here without a call per file
        first, first_arc = self.site_prefixes[0] if self.site_prefixes else ("\0", "")
        cut, slash = len(first), os.sep != "/"
        entries, rels = self.entries, self.rels
        for f in dist.files:
            path = f.path
            if path.endswith(_COMPILED) or _PYCACHE in path or (pointers and path in pointers):
                continue
            if path.startswith(meta):
                rest = path[len(meta):]
                if rest == "RECORD":
                    record_file = f
                    continue
                if rest in _INSTALLER_MARKS:
                    continue
            if path.startswith(first) and not slash:
                arc: str | None = first_arc + path[cut:]
            else:
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
                if arc in entries:
                    self.add(LayerEntry(arc, path))  # logs which one is kept
                else:
                    entries[arc] = LayerEntry(arc, path, "", f.hash)
                keep.add(f.rel)
            rels.setdefault(arc, f.rel)
        if record_file is not None:
            arc = self.arcname(record_file.path)
            if arc is not None:
                keep.add(record_file.rel)
                self.add(LayerEntry(arc, record_file.path, "record", None, frozenset(keep),
                                    frozenset(blank)))
                self.record_arc = arc

    def drop(self, arcname: str) -> None:
        """Leave *arcname* to another distribution: remove it and its RECORD row."""
        del self.entries[arcname]
        rel = self.rels.get(arcname)
        rec = self.entries.get(self.record_arc) if self.record_arc else None
        if rel is not None and rec is not None:
            self.entries[rec.arcname] = rec._replace(record_keep=rec.record_keep - {rel},
                                                     record_blank=rec.record_blank - {rel})

    def add_tree(self, entries: Iterable[tuple[str, str]]) -> None:
        for arc, src in entries:
            self.add(LayerEntry(arc, src))

    def plan(
        self, kind: str, mode: str, salt: Sequence[str], dists: Sequence[str] = ()
    ) -> LayerPlan:
        entries = tuple(self.entries[k] for k in sorted(self.entries, key=sort_key))
        return LayerPlan(kind, entries, mode, tuple(salt), tuple(dists))


def sort_key(arcname: str) -> str:
    """Archive order: as comparing path components ("\0" sorts below every name character)."""
    return arcname.replace("/", "\0")


def plan_layers(
    snapshot: Snapshot, kept: Sequence[DistInfo], salt: Sequence[str] = ()
) -> list[LayerPlan]:
    """One ``dist`` plan per installed distribution, one ``code`` plan per editable / local
    project, and one ``code`` plan (naming no distribution) for stray files nobody owns.

    A path two distributions claim goes to exactly one of them (:func:`_resolve_conflicts`),
    so the layers of one env never overlap.
    """
    walker = SourceWalker()
    builders: list[tuple[str, str, _Builder]] = []  # (kind, "name==version", builder)
    for dist in kept:
        b = _Builder(snapshot)
        b.add_dist_files(dist)
        if dist.source == "editable":
            if dist.egg_link:  # the egg-info lives in the checkout: materialise it
                base = "site-packages/" + os.path.basename(dist.metadata_dir)
                b.add_tree(walker.walk_dir(dist.metadata_dir, base, metadata=True))
            for root in dist.roots:
                b.add_tree(root_entries(walker, root))
        kind = "code" if dist.source in ("editable", "local") else "dist"
        builders.append((kind, f"{dist.name}=={dist.version}", b))
    stray = _Builder(snapshot)
    for path in snapshot.stray:
        arc = stray.arcname(path)
        if arc is None:
            continue
        if os.path.isdir(path):
            stray.add_tree(walker.walk_dir(path, arc, metadata=True))
        else:
            stray.add(LayerEntry(arc, path))
    _resolve_conflicts([(name, b) for _, name, b in builders] + [("stray files", stray)])
    plans = [b.plan(kind, "record" if kind == "dist" else "content", salt, [name])
             for kind, name, b in builders if b.entries]
    if stray.entries:
        plans.append(stray.plan("code", "content", salt))
    return plans


def _record_hash(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        return ""
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def _resolve_conflicts(owners: Sequence[tuple[str, _Builder]]) -> None:
    """A path claimed by several distributions goes to the one whose RECORD hash matches the
    file on disk, else to the first by name; the others leave it out (with a warning)."""
    first: dict[str, int] = {}
    clashes: dict[str, list[int]] = {}
    for i, (_, b) in enumerate(owners):
        for arc in b.entries:
            j = first.setdefault(arc, i)
            if j != i:
                clashes.setdefault(arc, [j]).append(i)
    for arc in sorted(clashes):
        cands = clashes[arc]
        matching = [i for i in cands if (e := owners[i][1].entries[arc]).known_hash
                    and e.known_hash == _record_hash(e.source)]
        winner = matching[0] if matching else cands[0]
        why = "its RECORD hash matches the file" if matching else (
            "first by name; no RECORD hash matches the file")
        losers = [i for i in cands if i != winner]
        log.warning("%s is installed by %s: packing it with %s (%s)", arc,
                    " and ".join(owners[i][0] for i in cands), owners[winner][0], why)
        for i in losers:
            owners[i][1].drop(arc)


_STDLIB_SKIP = frozenset(
    {"test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "ensurepip",
     "site-packages", "dist-packages", "__pycache__"}
)


def plan_python(snapshot: Snapshot, salt: tuple[str, ...] = ()) -> LayerPlan:
    """The base interpreter: bin/python3.X, libpython, the stdlib without tests and GUI bits.
    *salt*: what else its blob depends on (the bytecode compiler)."""
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
    salt = (base, snapshot.python.version) + salt
    return b.plan("python", "stat", salt)
