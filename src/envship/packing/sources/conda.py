"""Conda prefixes: the interpreter of a conda env links against shared libraries of its own
prefix, so the ``python`` layer of such an env carries them too."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .snapshot import Snapshot

__all__ = ["conda_prefix", "conda_shared_libs"]

log = logging.getLogger(__name__)

_SHARED = (".so", ".dylib")


def conda_prefix(snapshot: Snapshot) -> Path | None:
    """The conda prefix the snapshot's interpreter belongs to (has ``conda-meta/``), or None."""
    base = Path(snapshot.base_prefix)
    return base if (base / "conda-meta").is_dir() else None


def _is_shared_lib(name: str) -> bool:
    return name.endswith(_SHARED) or ".so." in name


def conda_shared_libs(snapshot: Snapshot) -> list[tuple[str, str]]:
    """(name, real path) of every shared library in the conda prefix's ``lib/``; [] if the env
    is not a conda env.

    A conda interpreter finds libffi, libssl, libz, libsqlite, ... through ``$ORIGIN``-relative
    run paths, so they must sit beside it wherever the node unpacks the layer. Symlinked
    library names resolve to their target (stored as regular files).
    """
    base = conda_prefix(snapshot)
    if base is None:
        return []
    libdir = base / "lib"
    found = []
    for name in sorted(os.listdir(libdir)) if libdir.is_dir() else ():
        full = libdir / name
        if _is_shared_lib(name) and full.is_file():  # is_file follows links
            found.append((name, os.path.realpath(full)))
    log.info("conda prefix %s: python layer with %d shared libraries", base, len(found))
    return found
