"""pack_lock(): a lock file + target -> the same layers and manifest an env snapshot gives."""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..buildcache import envship_home
from ..errors import PackError
from ..packing import PackResult, ProgressCallback, _check_output, pack_snapshot
from ..probe import _dist_info
from ..snapshot import Snapshot, snapshot_from_probe
from .lock import read_lock
from .project import ProjectCode, find_project, write_editable_stub
from .target import Target, resolve_target
from .uvbuild import Staged, resolve_set, stage

__all__ = [
    "CodeArg", "pack_lock", "pack_requirements", "stage_lock", "resolve_code", "lock_snapshot"
]

log = logging.getLogger(__name__)

_DISTS_FILE = ".envship-dists.json"

# --code: a project path, None (the project in the current directory, if any) or False (none)
CodeArg = str | os.PathLike[str] | None | bool


def builders_home(cache_dir: str | os.PathLike[str] | None) -> Path:
    """Where staged installs and cached resolutions live (beside the build cache)."""
    base = Path(cache_dir) if cache_dir is not None else envship_home() / "build-cache"
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


def pack_lock(
    requirements: str | os.PathLike[str],
    *,
    python_version: str | None = None,
    platform: str | None = None,
    strict: bool = False,
    code: CodeArg = None,
    output: str | os.PathLike[str] | None = None,
    exclude: Iterable[str] = (),
    only: Iterable[str] = (),
    include: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> PackResult:
    """Build an env from a lock without a local environment.

    *requirements*: ``requirements.txt`` (pinned), ``pylock.toml`` or ``uv.lock``;
    *python_version* (``3.X``) and *platform* (a wheel platform tag such as
    ``manylinux_2_28_aarch64``) name the target, default this interpreter and machine;
    *strict*: unpinned or incomplete requirements are an error instead of a warning;
    *code*: the project for the code layer (default: the one in the current directory).
    """
    out_dir = _check_output(Path(output)) if output is not None else None
    target = resolve_target(python_version, platform)
    project = resolve_code(code)
    staged = stage_lock(requirements, target, strict=strict, cache_dir=cache_dir)
    with tempfile.TemporaryDirectory(prefix="envship-code-") as tmp:
        code_site = None
        if project is not None:
            code_site = Path(tmp) / "site-packages"
            code_site.mkdir()
            write_editable_stub(project, code_site)
        snapshot = lock_snapshot(staged, target, code_site)
        return pack_snapshot(
            snapshot, output=out_dir, exclude=exclude, only=only, include=include,
            cache_dir=cache_dir, progress=progress,
        )


def pack_requirements(
    requirements: str | os.PathLike[str] | None,
    *,
    python: str | os.PathLike[str] | None = None,
    with_python: bool = False,
    **opts: Any,
) -> PackResult:
    """``pack(requirements=...)``: check the options that do not mix, then :func:`pack_lock`."""
    if requirements is None:
        lock_only = ("python_version", "platform", "strict", "code")
        named = ", ".join("--" + k.replace("_", "-") for k in lock_only if k in opts)
        raise PackError(f"{named}: only with --requirements (a lock file to build from).")
    if python is not None:
        raise PackError("--python and --requirements exclude each other: pack an existing "
                        "environment, or build one from a lock, not both.")
    if with_python:
        raise PackError("--with-python needs a local environment to copy the interpreter from; "
                        "a lock build has none (the node brings a Python of the target version).")
    return pack_lock(requirements, **opts)
