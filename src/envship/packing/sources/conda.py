"""Conda prefixes: the packages ``conda-meta/*.json`` records, each file in its package form.

A conda installer copies each package's files into the prefix, writing the install path over a
placeholder in some of them. Reading the records back gives, per package, which file holds
which placeholder (text or binary), so the layer can hold the file as it was in the package.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import PackError
from ..manifest import CondaPackage as ManifestPackage
from .snapshot import Snapshot

__all__ = [
    "CondaFile", "CondaPackage", "conda_prefix", "read_conda_meta", "unprefix",
    "owned_paths",
]

log = logging.getLogger(__name__)

# written by the installer, not taken from the package: bytecode, generated scripts, dirs
_SKIPPED_TYPES = frozenset({"pyc_file", "unix_python_entry_point", "directory",
                            "windows_python_entry_point_script", "windows_python_entry_point_exe"})
_ENTRY_SCRIPT = re.compile(rb"^from ([\w.]+) import ([\w.]+)$", re.M)


@dataclass(frozen=True)
class CondaFile:
    """One file or symlink of an installed conda package."""

    path: str  # relative to the prefix, as installed ("lib/python3.11/site-packages/x.py")
    arcname: str  # where the package holds it ("site-packages/x.py" for noarch python)
    symlink: bool = False
    placeholder: str | None = None
    mode: str | None = None  # "text" | "binary" when it holds a placeholder
    sha256: str | None = None  # of the file as the package holds it
    size: int | None = None  # installed size, when the record says
    sha256_in_prefix: str | None = None  # of the file as the installer wrote it, if recorded


@dataclass(frozen=True)
class CondaPackage:
    """An installed conda package, read from its ``conda-meta`` record."""

    name: str
    version: str
    build: str
    subdir: str
    noarch: str | None  # "python" / "generic" / None
    files: tuple[CondaFile, ...]
    source: str | None  # the extracted package it was linked from (``link.source``), if any
    entry_points: tuple[str, ...] = ()  # noarch python: "name = module:function"
    installed: frozenset[str] = frozenset()  # every path it put in the prefix (scripts, pycs)

    @property
    def label(self) -> str:
        return f"{self.name}=={self.version}={self.build}"

    @property
    def relocations(self) -> tuple[tuple[str, str, str], ...]:
        """(path in the package, placeholder, "text" / "binary") of every file holding one."""
        return tuple(sorted((f.arcname, f.placeholder, f.mode or "text") for f in self.files
                            if f.placeholder is not None and not f.symlink))

    def manifest_package(self) -> ManifestPackage:
        """The manifest's ``package`` field."""
        return ManifestPackage(self.name, self.version, self.build, self.subdir, self.noarch)


def conda_prefix(snapshot: Snapshot) -> Path | None:
    """The conda prefix the snapshot's interpreter belongs to (has ``conda-meta/``), or None."""
    base = Path(snapshot.base_prefix)
    return base if (base / "conda-meta").is_dir() else None


def _noarch_type(record: dict[str, object]) -> str | None:
    raw = record.get("noarch")
    if isinstance(raw, dict):
        raw = raw.get("type")
    return raw if raw in ("python", "generic") else None


def _noarch_arcname(path: str, site: str) -> str | None:
    """Where a noarch python package holds an installed *path* (None: generated on install)."""
    if path.startswith(site):
        return "site-packages/" + path[len(site):]
    if path.startswith("bin/"):
        return "python-scripts/" + path[4:]
    return path


def _entry_points(prefix: Path, source: str | None, scripts: list[str]) -> tuple[str, ...]:
    """A noarch package's entry points: from ``info/link.json`` of the package it was linked
    from, else read back from the scripts the installer generated."""
    if source:
        try:
            link = json.loads(Path(source, "info", "link.json").read_text(encoding="utf-8"))
            eps = link.get("noarch", {}).get("entry_points", [])
            if isinstance(eps, list) and all(isinstance(e, str) for e in eps):
                return tuple(sorted(eps))
        except (OSError, ValueError, AttributeError):
            pass
    found = []
    for rel in scripts:
        try:
            m = _ENTRY_SCRIPT.search((prefix / rel).read_bytes())
        except OSError:
            continue
        if m:
            found.append(f"{rel.rsplit('/', 1)[-1]} = {m[1].decode()}:{m[2].decode()}")
    return tuple(sorted(found))


def _record(path: Path, prefix: Path, site: str) -> CondaPackage:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        name, version, build = str(rec["name"]), str(rec["version"]), str(rec["build"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = f"no {exc} field" if isinstance(exc, KeyError) else str(exc)
        raise PackError(f"{path}: not a readable conda-meta record ({why}); repair the env "
                        "(conda install --force-reinstall) and pack again.") from exc
    noarch = _noarch_type(rec)
    link = rec.get("link")
    source = link.get("source") if isinstance(link, dict) else None
    source = source if isinstance(source, str) and os.path.isdir(source) else None
    paths_data = rec.get("paths_data")
    rows = paths_data.get("paths") if isinstance(paths_data, dict) else None
    if not isinstance(rows, list):  # old records: a file list only, no placeholders known
        listed = rec.get("files", [])
        rows = [{"_path": p} for p in listed if isinstance(p, str)] if isinstance(
            listed, list) else []
    for row in rows:  # nothing outside the prefix, whatever the record says
        rel = row.get("_path") if isinstance(row, dict) else None
        if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise PackError(f"{path}: not a readable conda-meta record (a path entry "
                            f"{rel if isinstance(rel, str) else row!r:.80}); repair the env "
                            "(conda install --force-reinstall) and pack again.")
    files: list[CondaFile] = []
    entry_scripts: list[str] = []
    for row in rows:
        rel = row.get("_path")
        ptype = row.get("path_type", "hardlink")
        if not isinstance(rel, str) or rel.endswith(".pyo"):
            continue
        if (rel.endswith(".pyc") or "/__pycache__/" in rel) and (
                noarch or "/__pycache__/" not in rel or not rel.endswith(".pyc")):
            continue  # installer-made bytecode: never taken (a package's own is, see layers)
        if ptype == "unix_python_entry_point":
            entry_scripts.append(rel)
        if ptype in _SKIPPED_TYPES:
            continue
        arcname = _noarch_arcname(rel, site) if noarch == "python" else rel
        if arcname is None:
            continue
        ph = row.get("prefix_placeholder")
        mode = row.get("file_mode") if ph else None
        size = row.get("size_in_bytes")
        in_prefix = row.get("sha256_in_prefix")
        files.append(CondaFile(
            rel, arcname, ptype == "softlink" or os.path.islink(prefix / rel),
            ph if isinstance(ph, str) and ph else None,
            mode if mode in ("text", "binary") else ("text" if ph else None),
            row.get("sha256") if isinstance(row.get("sha256"), str) else None,
            size if isinstance(size, int) and ptype != "softlink" else None,
            in_prefix if isinstance(in_prefix, str) else None,
        ))
    eps = _entry_points(prefix, source, entry_scripts) if noarch == "python" else ()
    subdir = str(rec.get("subdir") or ("noarch" if noarch else "unknown"))
    listed = rec.get("files")
    installed = {p for p in listed if isinstance(p, str) and p and not p.startswith("/")
                 and ".." not in p.split("/")} if isinstance(listed, list) else set()
    installed.update(r["_path"] for r in rows if isinstance(r, dict)
                     and isinstance(r.get("_path"), str))
    return CondaPackage(name, version, build, subdir, noarch,
                        tuple(sorted(files, key=lambda f: f.arcname)), source, eps,
                        frozenset(installed))


def read_conda_meta(prefix: Path, site_packages: str) -> list[CondaPackage]:
    """Every package recorded in ``prefix/conda-meta``, sorted by name.

    *site_packages*: the prefix's site-packages relative to it, with a trailing slash
    (``lib/python3.11/site-packages/``): where noarch python packages were placed.
    """
    meta = prefix / "conda-meta"
    pkgs = [_record(p, prefix, site_packages) for p in sorted(meta.glob("*.json"))]
    if not pkgs:
        raise PackError(f"{meta} holds no package record, so which file is whose is not "
                        "known; re-create the env with conda (or mamba, pixi) and pack again.")
    return sorted(pkgs, key=lambda p: p.name)


def owned_paths(packages: list[CondaPackage]) -> set[str]:
    """Every prefix-relative path the packages installed (also generated scripts, bytecode)."""
    owned: set[str] = set()
    for pkg in packages:
        owned.update(pkg.installed)
    return owned


def unprefix(data: bytes, prefix: str, placeholder: str, mode: str) -> bytes:
    """*data* with the install *prefix* turned back into *placeholder* (conda's rule undone).

    Text: every occurrence replaced. Binary: each NUL-terminated string holding the prefix gets
    the placeholder back and gives up the NULs the installer padded it with, so the length stays.
    """
    old, new = prefix.encode(), placeholder.encode()
    if mode != "binary":
        return data.replace(old, new)
    if len(new) < len(old):
        return data  # the installer could not have written it: leave it as found
    out = bytearray()
    pos = 0
    for m in re.finditer(re.escape(old) + rb"[^\0]*\0", data):
        if m.start() < pos:
            continue
        grow = (len(new) - len(old)) * m[0].count(old)
        end = m.end() + grow
        if data[m.end():end] != b"\0" * grow:
            continue  # not padded as the installer pads: not a relocated string
        out += data[pos:m.start()] + m[0].replace(old, new)
        pos = end
    return bytes(out + data[pos:])
