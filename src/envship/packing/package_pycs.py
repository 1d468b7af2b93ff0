"""The pycs a conda ``python`` package brings for its stdlib: what proves them this build's.

Conda keeps a package's build mtimes on its files, so a pyc the package carries was written
before the interpreter was installed: the install-time rule of :mod:`bytecode` never holds.
The package record proves instead: conda-forge's ``python`` compiles its stdlib with the
interpreter it ships, so a pyc of that package, next to a source of that package, both still
hashing as the record says, with the target interpreter that package's own unchanged file, is
that interpreter's bytecode of that source.
"""

from __future__ import annotations

import hashlib
import os

from .layers import LayerPlan, pyc_arcname
from .sources.conda import unprefix

__all__ = ["package_hashes"]


def _is_own_interpreter(plan: LayerPlan, python: str) -> bool:
    """True if *python* is a file of *plan*'s package whose bytes are still the package's."""
    real = os.path.realpath(python)
    entry = next((e for e in plan.entries if e.arcname.startswith("bin/")
                  and e.transform != "symlink" and os.path.realpath(e.source) == real), None)
    if entry is None or not entry.known_hash:
        return False
    try:
        with open(real, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    data = unprefix(data, *entry.relocate) if entry.relocate is not None else data
    return hashlib.sha256(data).hexdigest() == entry.known_hash


def package_hashes(plan: LayerPlan, python: str, cache_tag: str) -> dict[str, str]:
    """``{module arcname: "<source sha256>:<pyc sha256>"}`` for the modules of *plan* whose
    package brings their plain pyc for *cache_tag*, when *plan* is the conda ``python``
    package and *python* (the target interpreter) is its own file; else empty."""
    pkg = plan.package
    if pkg is None or plan.kind != "python" or not _is_own_interpreter(plan, python):
        return {}
    recorded = {f.arcname: f.sha256 for f in pkg.files
                if f.sha256 and f.placeholder is None and not f.symlink}
    found = {}
    for entry in plan.py_sources:
        source_sha = recorded.get(entry.arcname)
        pyc_sha = recorded.get(pyc_arcname(entry.arcname, cache_tag))
        if source_sha and pyc_sha:
            found[entry.arcname] = f"{source_sha}:{pyc_sha}"
    return found

