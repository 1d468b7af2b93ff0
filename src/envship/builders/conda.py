"""Conda prefixes: ship the prefix's own interpreter together with the shared libraries it uses."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..layers import LayerEntry, LayerPlan, plan_python
from ..snapshot import Snapshot

__all__ = ["conda_prefix", "conda_python_plan"]

log = logging.getLogger(__name__)

_SHARED = (".so", ".dylib")


def conda_prefix(snapshot: Snapshot) -> Path | None:
    """The conda prefix the snapshot's interpreter belongs to (has ``conda-meta/``), or None."""
    base = Path(snapshot.base_prefix)
    return base if (base / "conda-meta").is_dir() else None


def _is_shared_lib(name: str) -> bool:
    return name.endswith(_SHARED) or ".so." in name


def conda_python_plan(snapshot: Snapshot) -> LayerPlan | None:
    """The ``python`` layer of a conda prefix, or None when the env is not one.

    A conda interpreter links against libraries of its own prefix (libffi, libssl, libz,
    libsqlite, ...) found through ``$ORIGIN``-relative run paths; the layer holds them all
    under ``python/lib`` beside the interpreter and the stdlib, so the env runs from whatever
    directory the node unpacks it to. Symlinked library names are stored as regular files.
    """
    base = conda_prefix(snapshot)
    if base is None:
        return None
    plan = plan_python(snapshot)
    entries = {e.arcname: e for e in plan.entries}
    libdir = base / "lib"
    added = 0
    for name in sorted(os.listdir(libdir)) if libdir.is_dir() else ():
        full = libdir / name
        if not _is_shared_lib(name) or not full.is_file():  # is_file follows links
            continue
        arc = f"python/lib/{name}"
        if arc not in entries:
            entries[arc] = LayerEntry(arc, os.path.realpath(full))
            added += 1
    log.info("conda prefix %s: python layer with %d shared libraries", base, added)
    ordered = tuple(entries[k] for k in sorted(entries, key=lambda a: tuple(a.split("/"))))
    return LayerPlan(plan.kind, ordered, plan.fingerprint_mode, (*plan.salt, "conda"))
