"""pack(): snapshot an environment, build its layers (cached), write blobs and the manifest."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import PackError
from ..progress import Progress
from .archive import Blob, write_blob
from .buildcache import BuildCache
from .layers import LayerPlan, plan_layers, plan_python
from .manifest import Distribution, LayerRef, Manifest
from .selection import select
from .sources.conda import conda_prefix
from .sources.lock.project import write_editable_stub
from .sources.lock.stage import CodeArg, lock_snapshot, resolve_code, stage_lock
from .sources.lock.target import resolve_target
from .sources.snapshot import Snapshot, take_snapshot

__all__ = ["PackResult", "pack", "pack_lock", "pack_snapshot"]

log = logging.getLogger(__name__)


_LAYER_ORDER = ("python", "code", "deps")


@dataclass(frozen=True)
class PackResult:
    """What pack() made: the manifest, its env id, where each blob is, what was rebuilt."""

    manifest: Manifest
    env_id: str
    blobs: Mapping[str, Path]  # "sha256:<hex>" -> local blob file
    built: Mapping[str, bool]  # layer kind -> archived now (True) or from the build cache
    output: Path | None = None  # the local store it was written to (``envship.pack(output=)``)
    env_prefix: str | None = None  # the packed environment's sys.prefix (None: a lock build)


def pack(
    python: str | os.PathLike[str] | None = None,
    *,
    with_python: bool = False,
    exclude: Iterable[str] = (),
    only: Iterable[str] = (),
    include: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    requirements: str | os.PathLike[str] | None = None,
    **lock_opts: Any,
) -> PackResult:
    """Pack the environment of *python* (venv dir, prefix or interpreter; default: this one).

    Layers whose inputs did not change are taken from the build cache; the blobs stay there
    (``envship.pack(output=...)`` and ``envship.ship`` publish them to a store).
    With *requirements* (a lock file), builds the env from it instead, without a local
    environment; *lock_opts*: ``python_version``, ``platform``, ``strict``, ``code``
    (see :func:`pack_lock`).
    """
    if requirements is not None or lock_opts:
        return _pack_requirements(
            requirements, python=python, with_python=with_python, exclude=exclude, only=only,
            include=include, cache_dir=cache_dir, progress=progress, **lock_opts,
        )
    cache = BuildCache(Path(cache_dir)) if cache_dir is not None else BuildCache.default()
    snapshot = take_snapshot(python, probe_cache=cache.root / "probes")
    return pack_snapshot(
        snapshot,
        with_python=with_python or conda_prefix(snapshot) is not None,  # conda: own interpreter
        exclude=exclude,
        only=only,
        include=include,
        cache_dir=cache_dir,
        progress=progress,
    )


def pack_snapshot(
    snapshot: Snapshot,
    *,
    with_python: bool = False,
    exclude: Iterable[str] = (),
    only: Iterable[str] = (),
    include: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> PackResult:
    """:func:`pack` for an already taken snapshot."""
    selection = select(snapshot, exclude=exclude, only=only, include=include)
    salt = (snapshot.python.implementation, snapshot.python.abi, snapshot.python.platform)
    plans = plan_layers(snapshot, selection.kept, salt)
    if with_python:
        plans.append(plan_python(snapshot))
    cache = BuildCache(Path(cache_dir)) if cache_dir is not None else BuildCache.default()
    refs: dict[str, LayerRef] = {}
    blobs: dict[str, Path] = {}
    built: dict[str, bool] = {}
    for plan in plans:
        if not plan.entries:
            continue
        blob, now = cache.get_or_build(plan, _builder(plan, progress))
        refs[plan.kind] = LayerRef(plan.kind, blob.digest, blob.size, blob.files)
        blobs[blob.digest] = blob.path
        built[plan.kind] = now
    if not refs:
        raise PackError(
            f"nothing to pack in {snapshot.prefix}: every distribution was left out; "
            "check --only / --exclude."
        )
    layer_of = {"editable": "code", "local": "code"}
    dists = tuple(
        Distribution(d.name, d.version, d.source, layer_of.get(d.source, "deps"))
        for d in selection.kept
    )
    eps: dict[str, dict[str, str]] = {}
    for d in selection.kept:
        for group, items in d.entry_points.items():
            eps.setdefault(group, {}).update(items)
    manifest = Manifest(
        python=snapshot.python,
        layers=tuple(refs[k] for k in _LAYER_ORDER if k in refs),
        distributions=dists,
        entry_points={g: dict(sorted(v.items())) for g, v in sorted(eps.items())},
        excluded=selection.excluded,
    )
    return PackResult(manifest, manifest.env_id, blobs, built, env_prefix=snapshot.prefix)


def _builder(plan: LayerPlan, progress: Progress | None) -> Callable[[Path], Blob]:
    def build(blob_dir: Path) -> Blob:
        log.info("%s layer: archiving %d files", plan.kind, len(plan.entries))
        return write_blob(plan.entries, blob_dir, progress, plan.kind)

    return build


def pack_lock(
    requirements: str | os.PathLike[str],
    *,
    python_version: str | None = None,
    platform: str | None = None,
    strict: bool = False,
    code: CodeArg = None,
    exclude: Iterable[str] = (),
    only: Iterable[str] = (),
    include: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> PackResult:
    """Build an env from a lock without a local environment.

    *requirements*: ``requirements.txt`` (pinned), ``pylock.toml`` or ``uv.lock``;
    *python_version* (``3.X``) and *platform* (a wheel platform tag such as
    ``manylinux_2_28_aarch64``) name the target, default this interpreter and machine;
    *strict*: unpinned or incomplete requirements are an error instead of a warning;
    *code*: the project for the code layer (default: the one in the current directory).
    """
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
        result = pack_snapshot(
            snapshot, exclude=exclude, only=only, include=include,
            cache_dir=cache_dir, progress=progress,
        )
        return replace(result, env_prefix=None)  # its prefix is a staging directory


def _pack_requirements(
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
