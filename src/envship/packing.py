"""pack(): snapshot an environment, build its layers (cached), write blobs and the manifest."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archive import Blob, write_blob
from .buildcache import FORMAT_VERSION, BuildCache
from .errors import PackError
from .layers import LayerPlan, plan_layers, plan_python
from .manifest import Distribution, LayerRef, Manifest
from .selection import select
from .snapshot import Snapshot, take_snapshot

__all__ = ["PackResult", "ProgressCallback", "pack", "pack_snapshot", "write_output"]

log = logging.getLogger(__name__)

# progress(layer_kind, files_done, files_total); called while a layer is being archived
ProgressCallback = Callable[[str, int, int], None]

_LAYER_ORDER = ("python", "code", "deps")


@dataclass(frozen=True)
class PackResult:
    """What pack() made: the manifest, its env id, where each blob is, what was rebuilt."""

    manifest: Manifest
    env_id: str
    blobs: Mapping[str, Path]  # "sha256:<hex>" -> local blob file
    built: Mapping[str, bool]  # layer kind -> archived now (True) or from the build cache
    output: Path | None


def pack(
    python: str | os.PathLike[str] | None = None,
    *,
    with_python: bool = False,
    output: str | os.PathLike[str] | None = None,
    exclude: Iterable[str] = (),
    only: Iterable[str] = (),
    include: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    requirements: str | os.PathLike[str] | None = None,
    **lock_opts: Any,
) -> PackResult:
    """Pack the environment of *python* (venv dir, prefix or interpreter; default: this one).

    With *output*, writes the store layout (``blobs/sha256/<hex>.tar.gz``, ``envs/<id>.json``)
    there. Layers whose inputs did not change are taken from the build cache.
    With *requirements* (a lock file), builds the env from it instead, without a local
    environment; *lock_opts*: ``python_version``, ``platform``, ``strict``, ``code``
    (see ``envship.builders.pack_lock``).
    """
    if requirements is not None or lock_opts:
        from .builders.lockpack import pack_requirements

        return pack_requirements(
            requirements, python=python, with_python=with_python, output=output,
            exclude=exclude, only=only, include=include, cache_dir=cache_dir,
            progress=progress, **lock_opts,
        )
    out_dir = _check_output(Path(output)) if output is not None else None
    cache = BuildCache(Path(cache_dir)) if cache_dir is not None else BuildCache.default()
    snapshot = take_snapshot(python, probe_cache=cache.root / "probes")
    from .builders.conda import conda_python_plan

    python_plan = conda_python_plan(snapshot)  # a conda prefix ships its interpreter + libs
    return pack_snapshot(
        snapshot,
        with_python=with_python or python_plan is not None,
        python_plan=python_plan,
        output=out_dir,
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
    output: Path | None = None,
    exclude: Iterable[str] = (),
    only: Iterable[str] = (),
    include: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    python_plan: LayerPlan | None = None,
) -> PackResult:
    """:func:`pack` for an already taken snapshot (*python_plan*: instead of plan_python)."""
    selection = select(snapshot, exclude=exclude, only=only, include=include)
    salt = (snapshot.python.implementation, snapshot.python.abi, snapshot.python.platform)
    plans = plan_layers(snapshot, selection.kept, salt)
    if with_python:
        plans.append(python_plan or plan_python(snapshot))
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
    if output is not None:
        blobs = write_output(output, manifest, blobs)
    return PackResult(manifest, manifest.env_id, blobs, built, output)


def _builder(plan: LayerPlan, progress: ProgressCallback | None) -> Callable[[Path], Blob]:
    def build(blob_dir: Path) -> Blob:
        log.info("%s layer: archiving %d files", plan.kind, len(plan.entries))
        cb = None
        if progress is not None:
            kind = plan.kind

            def cb(done: int, total: int) -> None:
                progress(kind, done, total)

        return write_blob(plan.entries, blob_dir, cb)

    return build


def _check_output(out: Path) -> Path:
    """Fail early (before any work) when *out* cannot be a pack output directory."""
    out = out.expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise PackError(f"output {out} exists and is not a directory; choose another -o.")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise PackError(f"output {out}: {probe} is not a directory; choose another -o.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PackError(f"output directory {out} is not writable; choose another -o.")
    return out


def _place(src: Path, dest: Path) -> None:
    """Hard-link (or copy) *src* to *dest* via a temp name, so *dest* is never half-written."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(out: Path, manifest: Manifest, blobs: Mapping[str, Path]) -> dict[str, Path]:
    """Write blobs, then the manifest, in the store layout; on failure remove what was added."""
    created: list[Path] = []
    existed = out.exists()
    placed: dict[str, Path] = {}
    try:
        for sub in (out, out / "blobs", out / "blobs" / "sha256", out / "envs"):
            if not sub.exists():
                sub.mkdir()
                created.append(sub)
        for digest, src in blobs.items():
            dest = out / "blobs" / "sha256" / f"{digest.split(':', 1)[1]}.tar.gz"
            if not dest.exists():
                _place(src, dest)
                created.append(dest)
            placed[digest] = dest
        dest = out / "envs" / f"{manifest.env_id}.json"
        if not dest.exists():
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(manifest.to_json())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            created.append(dest)
    except OSError as exc:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for path in reversed(created):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise PackError(f"cannot write pack output to {out}: {exc.strerror or exc}") from exc
    log.debug("wrote %s (format %s)", out, FORMAT_VERSION)
    return placed
