"""A lock file + target -> a staged install and the Snapshot of it (what a venv would give)."""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ....errors import PackError
from ....paths import build_cache_dir
from ..probe import _dist_info
from ..snapshot import Snapshot, snapshot_from_probe
from .lockfile import read_lock
from .project import ProjectCode, find_project
from .target import Target
from .uvbuild import Staged, resolve_set, stage

__all__ = ["CodeArg", "builders_home", "lock_snapshot", "resolve_code", "stage_lock"]

log = logging.getLogger(__name__)

_DISTS_FILE = ".envship-dists.json"

# --code: a project path, None (the project in the current directory, if any) or False (none)
CodeArg = str | os.PathLike[str] | None | bool


def builders_home(cache_dir: str | os.PathLike[str] | None) -> Path:
    """Where staged installs and cached resolutions live (beside the build cache)."""
    base = Path(cache_dir) if cache_dir is not None else build_cache_dir()
    return base / "builders"


def resolve_code(code: CodeArg) -> ProjectCode | None:
    """The project whose code goes into the code layer (see :data:`CodeArg`)."""
    if code is False:
        return None
    if code is None or code is True:
        cwd = Path.cwd()
        if (cwd / "pyproject.toml").is_file():
            try:
                return find_project(cwd)
            except PackError as exc:
                if code is True:
                    raise
                log.warning("no code layer: %s", exc)  # found by looking, not asked for
                return None
        if code is True:
            raise PackError(f"--code: no pyproject.toml in {cwd}; give the project directory.")
        return None
    return find_project(code)


def stage_lock(
    requirements: str | os.PathLike[str],
    target: Target,
    *,
    strict: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Staged:
    """Read the lock, resolve it for *target* if needed, install it into a staging prefix."""
    home = builders_home(cache_dir)
    pinned = read_lock(requirements)
    lines = resolve_set(pinned, target, strict=strict, cache_root=home / "resolved")
    return stage(pinned, target, lines, home / "staged")


def lock_snapshot(staged: Staged, target: Target, code_site: Path | None) -> Snapshot:
    """A Snapshot of the staging prefix (read with this interpreter), with *target*'s facts."""
    sites = [staged.site] + ([code_site] if code_site is not None else [])
    dists = _staged_dists(staged)
    if code_site is not None:
        dists += [_dist_info(d, str(code_site), None)
                  for d in md.distributions(path=[str(code_site)])]
    data = {
        "distributions": dists,
        "site_packages": [str(s) for s in sites],
        "implementation": target.python.implementation,
        "version": target.python.version,
        "abi": target.python.abi,
        "cache_tag": target.python.cache_tag,
        "platform": target.python.platform,
        "executable": "",
        "prefix": str(staged.prefix),
        "base_prefix": str(staged.prefix),
        "stdlib": "",
        "scripts": str(staged.prefix / "bin"),
        "ldlibrary": "",
        "libdir": "",
    }
    return snapshot_from_probe(data)


def _staged_dists(staged: Staged) -> list[dict[str, Any]]:
    """The probe's description of the staged distributions; saved beside them (they never
    change once staged), so a warm build does not parse every RECORD again."""
    saved = staged.prefix / _DISTS_FILE
    try:
        data = json.loads(saved.read_text())
        if isinstance(data, list):
            return data
    except (OSError, ValueError):
        pass
    dists = [_dist_info(d, str(staged.site), None)
             for d in md.distributions(path=[str(staged.site)])]
    dists.sort(key=lambda d: str(d.get("name") or "").lower())
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=staged.prefix)
        with os.fdopen(fd, "w") as fh:
            json.dump(dists, fh)
        os.replace(tmp, saved)
    except OSError as exc:  # a read-only cache only costs speed
        log.debug("cannot save %s: %s", saved, exc)
    return dists
