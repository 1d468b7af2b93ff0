"""Install a pinned set with uv for a target platform into a cached, normalised staging prefix."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ....errors import PackError
from .lockfile import PinnedSet
from .target import Target
from .uvtool import BuildError, run_uv, uv_version

__all__ = ["STAGE_FORMAT", "Staged", "resolve_set", "stage", "staged_site"]

log = logging.getLogger(__name__)

# Bump when the staged layout or its normalisation changes (it is part of the cache key).
STAGE_FORMAT = "envship.staged/1"
# Top-level directories of a --target install that hold a wheel's non-package files
# (scripts, headers, .data/data): they move to the prefix, as in a venv.
_DATA_DIRS = ("bin", "share", "etc", "include")
# Installer bookkeeping that depends on where / how uv ran, not on the lock.
_DROP_FILES = ("uv_cache.json",)
_MARKER = ".envship-staged.json"


@dataclass(frozen=True)
class Staged:
    """A staging prefix holding the installed set (``lib/python3.X/site-packages``, ``bin``…)."""

    prefix: Path
    site: Path
    key: str
    built: bool  # installed now (False: from the staging cache)
    lines: tuple[str, ...]  # the requirement lines installed


def staged_site(prefix: Path, target: Target) -> Path:
    return prefix / "lib" / f"python{target.python_version}" / "site-packages"


def _uv_target_args(target: Target) -> list[str]:
    return ["--python-platform", target.uv_platform, "--python-version", target.python_version,
            "--only-binary", ":all:"]


def _incomplete(pinned: PinnedSet, missing: list[str], strict: bool) -> None:
    if not missing:
        return
    msg = (f"{pinned.source}: does not list {', '.join(missing)} (needed by the others); "
           "resolved them now, so the build is not reproducible (list every package, e.g. "
           "with `uv pip compile`, or use a pylock.toml / uv.lock)")
    if strict:
        raise BuildError(msg + ".")
    log.warning("%s", msg)


def resolve_set(
    pinned: PinnedSet, target: Target, *, strict: bool, cache_root: Path | None = None
) -> tuple[str, ...]:
    """The complete requirement lines to install with ``--no-deps``.

    Complete locks (pylock.toml, uv.lock) are taken as they are. A requirements file is
    resolved by ``uv pip compile`` for the target: unpinned or missing entries are what the
    index offers today, so the build is not reproducible (a warning; an error with *strict*).
    A fully pinned file's resolution is cached under *cache_root*.
    """
    if pinned.unpinned:
        msg = (f"{pinned.source}: not pinned to one version: {', '.join(pinned.unpinned)}; "
               "the build is not reproducible (pin them with ==, or use a pylock.toml / uv.lock)")
        if strict:
            raise BuildError(msg + ".")
        log.warning("%s", msg)
    if pinned.complete:
        return pinned.lines
    cache_file = None
    if cache_root is not None and pinned.pinned:
        key = _stage_key(pinned.lines, pinned.options, target)
        cache_file = cache_root / f"{key}.json"
        try:
            cached = json.loads(cache_file.read_text())
            _incomplete(pinned, list(cached["missing"]), strict)
            return tuple(str(x) for x in cached["lines"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    lines, missing = _compile(pinned, target)
    _incomplete(pinned, missing, strict)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=cache_file.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump({"lines": list(lines), "missing": missing}, fh)
            os.replace(tmp, cache_file)
        except OSError as exc:
            log.warning("cannot cache the resolution in %s: %s", cache_file.parent, exc)
    return lines


def _req_name(line: str) -> str:
    for sep in ("==", " ", ";", "@", "["):
        line = line.split(sep, 1)[0]
    return line.strip().lower().replace("_", "-").replace(".", "-")


def _compile(pinned: PinnedSet, target: Target) -> tuple[tuple[str, ...], list[str]]:
    with tempfile.TemporaryDirectory(prefix="envship-compile-") as tmp:
        req = Path(tmp) / "requirements.in"
        req.write_text(pinned.text(), encoding="utf-8")
        out = run_uv(
            ["pip", "compile", "--quiet", "--no-header", "--no-annotate",
             *_uv_target_args(target), str(req)],
            platform=target.python.platform, python_version=target.python_version,
            what=f"resolving {pinned.source} for {target.python.platform}",
        )
    resolved: dict[str, str] = {}
    for line in out.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            resolved[_req_name(line)] = line
    given = {_req_name(ln): ln for ln in pinned.lines}
    unpinned = {n.lower().replace("_", "-").replace(".", "-") for n in pinned.unpinned}
    missing = sorted(set(resolved) - set(given))
    # pinned input lines keep their hashes; everything else is what the resolver chose
    lines = [given[n] if n in given and n not in unpinned else resolved[n] for n in resolved]
    return tuple(sorted(lines, key=str.lower)), missing


def _stage_key(lines: tuple[str, ...], options: tuple[str, ...], target: Target) -> str:
    h = hashlib.sha256()
    for part in (STAGE_FORMAT, uv_version(), target.uv_platform, target.python_version,
                 *options, "", *lines):
        h.update(part.encode() + b"\n")
    return h.hexdigest()


def _replace_text(path: Path, text: str) -> None:
    """Write via a new file: installed files may be hard links into uv's cache."""
    tmp = path.with_name(path.name + ".envship-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _normalise(site: Path, prefix: Path) -> None:
    """Make the staged tree depend only on the lock: data dirs out of site-packages, RECORDs
    sorted with their paths relative as a venv has them, installer-local files dropped."""
    moved: list[str] = []
    for name in _DATA_DIRS:
        src = site / name
        if src.is_dir() and not (src / "__init__.py").exists():
            os.replace(src, prefix / name)
            moved.append(name)
    for entry in site.iterdir():
        if entry.name.startswith(".") and entry.is_file():  # uv's .lock and the like
            entry.unlink()
    up = os.path.relpath(prefix, site).replace(os.sep, "/")
    for record in sorted(site.glob("*.dist-info/RECORD")):
        info = record.parent
        for fname in _DROP_FILES:
            (info / fname).unlink(missing_ok=True)
        dropped = {f"{info.name}/{f}" for f in _DROP_FILES}
        rows = []
        for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))):
            if not row or row[0] in dropped:
                continue
            path = row[0]
            if path.split("/", 1)[0] in moved:
                path = f"{up}/{path}"
            rows.append([path, row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else ""])
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in sorted(rows, key=lambda r: r[0]):
            writer.writerow(row)
        _replace_text(record, out.getvalue())
        installer = info / "INSTALLER"
        if installer.exists():
            _replace_text(installer, "uv\n")


def stage(
    pinned: PinnedSet, target: Target, lines: tuple[str, ...], root: Path
) -> Staged:
    """The staging prefix for *lines* on *target*, installed once under *root* and reused."""
    if not lines:
        raise BuildError(f"{pinned.source}: nothing to install for {target.python.platform} "
                         f"/ CPython {target.python_version} (empty, or every marker false).")
    key = _stage_key(lines, pinned.options, target)
    final = root / key
    if (final / _MARKER).exists():
        log.info("staging cache hit %s", key[:12])
        return Staged(final, staged_site(final, target), key, False, lines)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PackError(f"cannot create the staging cache {root}: {exc.strerror or exc}") from exc
    with FileLock(str(root / f"{key}.lock")):
        if (final / _MARKER).exists():
            return Staged(final, staged_site(final, target), key, False, lines)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        try:
            site = staged_site(tmp, target)
            site.mkdir(parents=True)
            req = tmp / "requirements.txt"
            req.write_text("".join(f"{ln}\n" for ln in (*pinned.options, *lines)),
                           encoding="utf-8")
            run_uv(
                ["pip", "install", "--quiet", "--no-deps", "--target", str(site),
                 *_uv_target_args(target), "-r", str(req)],
                platform=target.python.platform, python_version=target.python_version,
                what=f"installing {pinned.source} for {target.python.platform}",
            )
            req.unlink()
            _normalise(site, tmp)
            (tmp / _MARKER).write_text(json.dumps(
                {"format": STAGE_FORMAT, "platform": target.python.platform,
                 "python": target.python_version, "lines": list(lines)}, indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Staged(final, staged_site(final, target), key, True, lines)
