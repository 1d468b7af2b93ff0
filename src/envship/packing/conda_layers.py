"""The layer plans of a conda env: one per conda package, in its placeholder form, + strays.

A conda layer's bytes depend on the package alone, never on the prefix it was installed in:
files holding the install path are taken from the package cache (``link.source``) when the
copy there is the package's, else read from the prefix with the installer's substitution undone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackError
from .layers import LayerEntry, LayerPlan, sort_key
from .sources.conda import CondaFile, CondaPackage, owned_paths, read_conda_meta, unprefix
from .sources.conda_installer import installer_dir, installer_file
from .sources.snapshot import DistInfo, Snapshot

__all__ = ["CondaPlans", "plan_conda"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CondaPlans:
    """What :func:`plan_conda` found: a plan per package, the pip dists conda owns, strays."""

    plans: tuple[LayerPlan, ...]  # the python package's (kind "python") first
    owned_dists: frozenset[str]  # "name==version" of distributions a conda package installed
    stray: tuple[LayerEntry, ...]  # files nobody owns, as "data/<path>", sorted
    changed: tuple[str, ...]  # prefix paths that differ from their package (packed as found)


def _sha256(path: str | Path, data: bytes | None = None) -> str:
    if data is None:
        with open(path, "rb") as fh:
            data = fh.read()
    return hashlib.sha256(data).hexdigest()


def _symlink(prefix: Path, f: CondaFile) -> LayerEntry:
    """A symlink as a symlink, relative within the prefix; one pointing out of the prefix is
    packed as the file it points to (with a warning)."""
    full = prefix / f.path
    target = os.readlink(full)
    real = os.path.normpath(os.path.join(os.path.dirname(full), target))
    inside = os.path.relpath(real, prefix)
    if inside == ".." or inside.startswith(".." + os.sep):
        log.warning("%s: symlink to %s outside the env; packing the file it points to",
                    f.path, target)
        return LayerEntry(f.arcname, os.path.realpath(full))
    if os.path.isabs(target):
        target = os.path.relpath(prefix / inside, (prefix / f.path).parent)
    return LayerEntry(f.arcname, target, "symlink")


def _placeholder_entry(prefix: Path, pkg: CondaPackage, f: CondaFile, changed: list[str]
                       ) -> LayerEntry:
    """The file in its package form: the prefix's copy with the install path turned back into
    the placeholder when that gives the package's bytes; else the package cache's copy, if the
    installed one is still what the installer wrote; else (changed after install) the prefix's
    copy, turned back as far as it goes, reported."""
    assert f.placeholder is not None and f.mode is not None
    installed = prefix / f.path
    relocate = (str(prefix), f.placeholder, f.mode)
    entry = LayerEntry(f.arcname, str(installed), "unprefix", f.sha256, relocate=relocate)
    if not f.sha256:
        return entry  # nothing to check against
    data = installed.read_bytes()
    if _sha256(installed, unprefix(data, *relocate)) == f.sha256:
        return entry
    as_written = _sha256(installed, data) == f.sha256_in_prefix
    if pkg.source is not None and (as_written or f.sha256_in_prefix is None):
        cached = os.path.join(pkg.source, f.arcname)
        try:
            if _sha256(cached) == f.sha256:
                return LayerEntry(f.arcname, cached, known_hash=f.sha256)
        except OSError:
            pass
    if as_written:  # exactly what the installer wrote, for a prefix that is not this one
        raise PackError(
            f"{prefix} is not where conda installed it: {f.path} still holds the path it was "
            "installed at. A conda env cannot be moved by hand: pack it where it was "
            "installed, or keep the package cache its conda-meta records name (link.source)"
        )
    changed.append(f.path)
    return entry


def _package_plan(prefix: Path, pkg: CondaPackage, salt: Sequence[str], dists: Sequence[str],
                  changed: list[str], pip_owned: set[str]) -> LayerPlan:
    """The package's files; its pycs are not taken as files: the compile workers take each
    one that is provably its source's (see :mod:`package_pycs`), else compile the source.
    Files missing from the prefix, and files a pip distribution installed over them
    (*pip_owned*: theirs now, in their own layer), leave the package, and its relocation
    table with them."""
    entries: list[LayerEntry] = []
    kept: list[CondaFile] = []
    missing: list[str] = []
    for f in pkg.files:
        full = prefix / f.path
        if f.arcname.endswith((".pyc", ".pyo")):
            kept.append(f)  # offered to the compile workers (package_pycs), not packed as is
            continue
        if f.path in pip_owned:
            log.info("%s: installed over conda package %s by pip; packed with that "
                     "distribution", f.path, pkg.label)
            continue
        if f.symlink and os.path.islink(full):
            entry = _symlink(prefix, f)
        elif not os.path.lexists(full):
            missing.append(f.path)
            continue
        elif f.placeholder is not None:
            entry = _placeholder_entry(prefix, pkg, f, changed)
        else:
            if f.size is not None and os.stat(full).st_size != f.size:
                changed.append(f.path)
            entry = LayerEntry(f.arcname, str(full), known_hash=f.sha256)
        entries.append(entry)
        kept.append(f)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3
                                          else "")
        log.warning("%s: %d file(s) of conda package %s are missing (removed after install?): "
                    "%s; the env will not have them", prefix, len(missing), pkg.label, shown)
    entries.sort(key=lambda e: sort_key(e.arcname))
    kind = "python" if pkg.name == "python" else "conda"
    if len(kept) != len(pkg.files):  # the manifest's relocations: only files the layer has
        pkg = dataclasses.replace(pkg, files=tuple(kept))
    return LayerPlan(kind, tuple(entries), "record", tuple(salt), tuple(sorted(dists)), pkg)


def _site_rel(snapshot: Snapshot, prefix: Path) -> str:
    for sp in snapshot.site_packages:
        rel = os.path.relpath(sp, prefix)
        if not rel.startswith(".."):
            return rel.replace(os.sep, "/") + "/"
    mm = snapshot.python.major_minor
    return f"lib/python{mm}/site-packages/"


def _strays(prefix: Path, owned: set[str], site: str
            ) -> tuple[list[tuple[str, str]], list[str]]:
    """Files under *prefix* that no conda package and no pip distribution installed (outside
    site-packages: the snapshot reports strays there), and the installers' own files and
    folders among them (left out)."""
    found: list[tuple[str, str]] = []
    installers: list[str] = []
    for dirpath, dirnames, filenames in os.walk(prefix):
        rel_dir = os.path.relpath(dirpath, prefix).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        keep = []
        for d in sorted(dirnames):
            rel = rel_dir + d
            if d == "__pycache__" or (rel + "/").startswith(site) or (
                    rel in owned and os.path.islink(os.path.join(dirpath, d))):
                continue
            if installer_dir(rel):
                if rel != "conda-meta":
                    installers.append(rel + "/")
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = rel_dir + name
            if rel in owned or name.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, name)
            if installer_file(rel, full):
                installers.append(rel)
            else:
                found.append(("data/" + rel, full))
    return found, installers


def plan_conda(snapshot: Snapshot, prefix: Path, salt: Sequence[str]) -> CondaPlans:
    """Plans for every conda package of *prefix*; which of the snapshot's distributions the
    packages own; files nobody owns; files changed since they were installed."""
    site = _site_rel(snapshot, prefix)
    packages = read_conda_meta(prefix, site)
    owned = owned_paths(packages)
    by_meta: dict[str, DistInfo] = {}
    for d in snapshot.distributions:
        rel = os.path.relpath(d.metadata_dir, prefix).replace(os.sep, "/")
        by_meta[rel] = d
    pip_owned: set[str] = set()
    owned_dists: set[str] = set()
    plans: list[LayerPlan] = []
    changed: list[str] = []
    dists_of: list[list[str]] = []
    for pkg in packages:
        mine = {os.path.dirname(f.path) for f in pkg.files
                if os.path.dirname(f.path) in by_meta}
        dists_of.append([f"{by_meta[m].name}=={by_meta[m].version}" for m in sorted(mine)])
        owned_dists.update(dists_of[-1])
    for d in snapshot.distributions:
        if f"{d.name}=={d.version}" not in owned_dists:
            pip_owned.update(os.path.relpath(f.path, prefix).replace(os.sep, "/")
                             for f in d.files)
    for pkg, dists in zip(packages, dists_of, strict=True):
        plan = _package_plan(prefix, pkg, salt, dists, changed, pip_owned)
        if plan.entries:
            plans.append(plan)
        else:  # a metapackage (python_abi, _libgcc_mutex, ...): nothing to ship
            log.info("conda package %s installs no file: no layer", pkg.label)
    stray: list[LayerEntry] = []
    strays, installers = _strays(prefix, owned | pip_owned, site)
    if installers:
        log.info("left out of %s, the conda installers' own files: %s", prefix,
                 ", ".join(installers))
    for arc, path in strays:
        log.warning("%s: owned by no conda package and no distribution; packing it as a "
                    "stray file", path)
        if not os.path.islink(path):
            stray.append(LayerEntry(arc, path))
            continue
        rel = os.path.relpath(path, prefix).replace(os.sep, "/")
        entry = _symlink(prefix, CondaFile(rel, arc, symlink=True))
        if entry.transform == "symlink" or os.path.exists(entry.source):
            stray.append(entry)
        else:
            log.warning("%s: a dangling symlink; left out", path)
    stray.sort(key=lambda e: sort_key(e.arcname))
    for path in changed:
        log.warning("%s/%s differs from its conda package (changed after install): packed as "
                    "found", prefix, path)
    plans.sort(key=lambda p: (p.kind != "python", p.label))
    return CondaPlans(tuple(plans), frozenset(owned_dists), tuple(stray), tuple(changed))
