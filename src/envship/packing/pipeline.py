"""pack(): snapshot an environment, build its layers (cached), write blobs and the manifest."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PackError
from ..node.formats import env_key, layer_order
from ..progress import Progress
from .archive import Blob, ContentKeys, write_blob
from .buildcache import SHARED_KINDS, BuildCache, SharedCache, content_fingerprint, fingerprint
from .bytecode import CompilePool, Compiler, compiler_for
from .layers import LayerEntry, LayerPlan, plan_layers, plan_python, sort_key
from .manifest import SCHEMA, Distribution, LayerRef, Manifest, Relocation
from .options import LOCK_OPTIONS
from .selection import select
from .sources.conda import conda_prefix
from .sources.snapshot import Snapshot, default_cache_tag, take_snapshot

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import LockOptions
    from .sources.lock.stage import CodeArg

__all__ = ["PackResult", "pack", "pack_lock", "pack_snapshot"]

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class PackResult:
    """What pack() made: the manifest, its env id, where each blob is, what was rebuilt."""

    manifest: Manifest
    env_id: str
    blobs: Mapping[str, Path | None]  # "sha256:<hex>" -> local blob file (None: in the store)
    built: Mapping[str, bool]  # layer digest -> archived now (True) or from a build cache
    output: Path | None = None  # the local store it was written to (``envship.pack(output=)``)
    env_prefix: str | None = None  # the packed environment's sys.prefix (None: a lock build)
    # content fingerprint -> blob digest, for the team build cache (layers it did not serve)
    shareable: Mapping[str, str] = field(default_factory=dict)
    # the same for layers this machine's build cache served (built here earlier): worth
    # recording where the store lacked the blob (a new store, or one a gc emptied)
    known_contents: Mapping[str, str] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path | None:
        """The manifest file written under :attr:`output` (None: nothing was written)."""
        return self.output.joinpath(*env_key(self.env_id)) if self.output else None


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
    shared_cache: SharedCache | None = None,
    **lock_opts: Unpack[LockOptions],
) -> PackResult:
    """Pack the environment of *python* (venv dir, prefix or interpreter; default: this one).

    Layers whose inputs did not change are taken from the build cache; the blobs stay there
    (``envship.pack(output=...)`` and ``envship.ship`` publish them to a store).
    With *requirements* (a lock file), builds the env from it instead, without a local
    environment; *lock_opts*: ``python_version``, ``platform``, ``strict``, ``code``
    (see :func:`pack_lock`). *shared_cache*: a team build cache (the store's, when shipping)
    whose blobs are reused instead of built; such blobs have no local path in the result.
    """
    unknown = sorted(set(lock_opts) - set(LOCK_OPTIONS))
    if unknown:
        raise PackError(f"unknown option {unknown[0]!r}: see pack's and ship's options in "
                        "docs/core.md and docs/store.md")
    if requirements is not None or lock_opts:
        return _pack_requirements(
            requirements, python=python, with_python=with_python, exclude=exclude, only=only,
            include=include, cache_dir=cache_dir, progress=progress, shared_cache=shared_cache,
            **lock_opts,
        )
    cache = BuildCache(Path(cache_dir)) if cache_dir is not None else BuildCache.default()
    snapshot = take_snapshot(python, probe_cache=cache.root / "probes")
    return pack_snapshot(
        snapshot,
        with_python=with_python,
        exclude=exclude,
        only=only,
        include=include,
        cache_dir=cache_dir,
        progress=progress,
        shared_cache=shared_cache,
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
    shared_cache: SharedCache | None = None,
) -> PackResult:
    """:func:`pack` for an already taken snapshot."""
    py = snapshot.python
    cache_tag = py.cache_tag or default_cache_tag(py.implementation, py.version)
    compiler = compiler_for(snapshot.executable, cache_tag)
    if compiler is None:
        log.info("no %s interpreter here to compile bytecode: nodes will compile it", cache_tag)
    # What a dist blob's bytes depend on besides its own files: the target interpreter.
    salt = (py.implementation, cache_tag, py.abi, py.platform,
            compiler.fingerprint if compiler is not None else "bytecode=node")
    conda = conda_prefix(snapshot)
    conda_owned: frozenset[str] = frozenset()
    if conda is not None:  # a conda env: its packages, its own interpreter among them
        from .conda_layers import plan_conda

        found_conda = plan_conda(snapshot, conda, salt)
        conda_owned = found_conda.owned_dists
        if with_python:
            log.info("--with-python: a conda env ships its own interpreter anyway (its "
                     "python package is the python layer)")
    # a conda package's distribution comes with its package: a conda env is packed whole
    selection = select(snapshot, exclude=exclude, only=only, include=include,
                       whole=conda_owned)
    if conda is not None:
        pip = [d for d in selection.kept if f"{d.name}=={d.version}" not in conda_owned]
        plans = list(found_conda.plans) + plan_layers(snapshot, pip, salt)
        if found_conda.stray:
            plans.append(LayerPlan("code", found_conda.stray, "content", tuple(salt)))
    else:
        plans = plan_layers(snapshot, selection.kept, salt)
        if with_python:
            plans.insert(0, plan_python(snapshot, salt[-1:]))
    if not plans:
        raise PackError(
            f"nothing to pack in {snapshot.prefix}: every distribution was left out; "
            "check --only / --exclude."
        )
    cache = BuildCache(Path(cache_dir)) if cache_dir is not None else BuildCache.default()
    by_content: dict[int, str] = {}
    reused: set[int] = set()
    found = _build(plans, cache, compiler, progress, by_content, reused, shared_cache)
    known_contents: dict[str, str] = {}
    if shared_cache is not None:  # shipping: what the team cache could learn from us
        for i, (plan, (blob, now)) in enumerate(zip(plans, found, strict=True)):
            if not now and i not in by_content and plan.kind in SHARED_KINDS:
                cfp = cache.content_of(blob.digest)
                if cfp is not None:
                    known_contents[cfp] = blob.digest
    refs: list[LayerRef] = []
    layer_of: dict[str, str] = {}
    blobs: dict[str, Path | None] = {}
    built: dict[str, bool] = {}
    shareable: dict[str, str] = {}
    for i, (plan, (blob, now)) in enumerate(zip(plans, found, strict=True)):
        layer_of.update((d, blob.digest) for d in plan.dists)
        if i in by_content and i not in reused:
            shareable[by_content[i]] = blob.digest
        if blob.digest in blobs:
            continue
        bytecode = None
        if plan.package is not None and plan.kind == "python":
            bytecode = "packed" if compiler is not None else None
        elif plan.package is not None:
            bytecode = "packed" if plan.has_py_sources and compiler else "none"
        elif plan.kind != "python":
            bytecode = "none" if not plan.has_py_sources else "packed" if compiler else "node"
        elif compiler is not None:
            bytecode = "packed"  # the stdlib; without it (older envs) the node compiles it
        pkg = plan.package
        refs.append(LayerRef(
            plan.kind, blob.digest, blob.size, blob.files, None, plan.dists, bytecode,
            blob.unpacked,
            pkg.manifest_package() if pkg is not None else None,
            tuple(Relocation(*r) for r in pkg.relocations) if pkg is not None else (),
            pkg.entry_points if pkg is not None else (),
        ))
        blobs[blob.digest] = blob.path
        built[blob.digest] = now
    empty = [d.name for d in selection.kept if f"{d.name}=={d.version}" not in layer_of]
    if empty:
        raise PackError(
            f"{', '.join(empty)} in {snapshot.prefix}: no installed file of it is inside the "
            "environment; reinstall it, or leave it out with --exclude."
        )
    dists = tuple(
        Distribution(d.name, d.version,
                     "conda" if f"{d.name}=={d.version}" in conda_owned else d.source,
                     layer_of[f"{d.name}=={d.version}"])
        for d in selection.kept
    )
    eps: dict[str, dict[str, str]] = {}
    for d in selection.kept:
        if f"{d.name}=={d.version}" in conda_owned:
            continue  # conda writes its own scripts (noarch: the layer's entry points)
        for group, items in d.entry_points.items():
            eps.setdefault(group, {}).update(items)
    python = dataclasses.replace(py, cache_tag=cache_tag)
    schema = SCHEMA
    manifest = Manifest(
        python=python,
        layers=tuple(sorted(refs, key=lambda r: (
            layer_order(schema, r.kind), r.package.name if r.package else "", list(r.dists)))),
        distributions=dists,
        entry_points={g: dict(sorted(v.items())) for g, v in sorted(eps.items())},
        excluded=selection.excluded,
        schema=schema,
    )
    return PackResult(manifest, manifest.env_id, blobs, built, env_prefix=snapshot.prefix,
                      shareable=shareable, known_contents=known_contents)


def _build(
    plans: Sequence[LayerPlan],
    cache: BuildCache,
    compiler: Compiler | None,
    progress: Progress | None,
    by_content: dict[int, str],
    reused: set[int],
    shared: SharedCache | None = None,
) -> list[tuple[Blob, bool]]:
    """(blob, built now) per plan: from the build cache, the team's (*shared*), else
    compiled + archived. Fills *by_content* (plan index -> content fingerprint, where it was
    computed) and *reused* (plans whose blob only the store holds)."""
    fps = [fingerprint(plan) for plan in plans]
    found: list[tuple[Blob, bool] | None] = []
    for plan, fp in zip(plans, fps, strict=True):
        hit = cache.lookup(fp)
        if hit is not None:
            log.debug("%s layer: build cache hit (%s)", plan.label, hit.digest)
        found.append((hit, False) if hit is not None else None)
    # Not built from these very files (paths, mtimes) before: maybe from the same contents,
    # e.g. the same numpy in another venv. Hashing the files costs far less than a rebuild,
    # but where nothing can be found (a cold cache, no store) the archiver hashes them.
    for i, f in enumerate(found):
        if f is None and plans[i].kind in SHARED_KINDS and (
                shared is not None or cache.may_hold_contents(plans[i])):
            by_content[i] = cfp = content_fingerprint(plans[i])
            hit = cache.lookup(cfp)
            if hit is not None:
                log.debug("%s layer: same contents built before (%s)", plans[i].label, hit.digest)
                cache.store(fps[i], hit)
                found[i] = (hit, False)
    # ... or by a colleague: the team build cache of the store the env goes to.
    asked = {by_content[i]: i for i, f in enumerate(found) if f is None and i in by_content}
    if shared is not None and asked:
        for cfp, blob in shared.lookup(list(asked)).items():
            i = asked[cfp]
            log.debug("%s layer: in the store's build cache (%s)", plans[i].label, blob.digest)
            found[i] = (blob, False)
            reused.add(i)
    missing = [i for i, f in enumerate(found) if f is None]
    if missing:
        log.info("building %d of %d layers", len(missing), len(plans))
        cache.sweep_temp()  # leftovers of killed packs, once nobody can still be writing them
        try:
            cache.root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".tmp-bytecode-", dir=cache.root))
        except OSError as exc:
            raise PackError(f"cannot write the build cache {cache.root}: "
                            f"{exc.strerror or exc}") from exc
        def archive(i: int, pycs: tuple[LayerEntry, ...] = ()) -> None:
            plan = plans[i]
            entries = plan.entries if not pycs else tuple(
                sorted(plan.entries + pycs, key=lambda e: sort_key(e.arcname)))
            log.info("%s layer: archiving %d files", plan.label, len(entries))
            keys = None
            if plan.kind in SHARED_KINDS and i not in by_content:
                keys = ContentKeys(frozenset(e.arcname for e in plan.entries
                                             if e.transform != "symlink"))
            blob = write_blob(entries, cache.blob_dir, progress, plan.label, keys)
            cache.store(fps[i], blob)
            if keys is not None:
                by_content[i] = content_fingerprint(plan, keys.keys)
            if i in by_content:
                cache.store_by_content(by_content[i], plan, blob)
            found[i] = (blob, True)

        try:
            # The workers compile (biggest layer first) while this thread archives the
            # layers that need no bytecode, then each layer as soon as its modules are done.
            compiled = [i for i in missing if plans[i].has_py_sources] if compiler else []
            with contextlib.ExitStack() as stack:
                ready: Iterator[tuple[int, tuple[LayerEntry, ...]]] = iter(())
                if compiler is not None and compiled:
                    pool = stack.enter_context(CompilePool(compiler, work, cache.root / "bytecode"))
                    ready = pool.compile([plans[i] for i in compiled])
                for i in missing:
                    if i not in compiled:
                        archive(i)
                for k, pycs in ready:
                    archive(compiled[k], pycs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return [f for f in found if f is not None]


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
    shared_cache: SharedCache | None = None,
) -> PackResult:
    """Build an env from a lock without a local environment.

    *requirements*: ``requirements.txt`` (pinned), ``pylock.toml`` or ``uv.lock``;
    *python_version* (``3.X``) and *platform* (a wheel platform tag such as
    ``manylinux_2_28_aarch64``) name the target, default this interpreter and machine;
    *strict*: unpinned or incomplete requirements are an error instead of a warning;
    *code*: the project for the code layer (default: the one in the current directory).
    """
    # imported here: a pack of an existing env (most packs) does not load the lock machinery
    from .sources.lock.project import write_editable_stub
    from .sources.lock.stage import lock_snapshot, resolve_code, stage_lock
    from .sources.lock.target import resolve_target

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
            cache_dir=cache_dir, progress=progress, shared_cache=shared_cache,
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
        named = ", ".join("--" + k.replace("_", "-") for k in LOCK_OPTIONS if k in opts)
        raise PackError(f"{named}: only with --requirements (a lock file to build from).")
    if python is not None:
        raise PackError("--python and --requirements exclude each other: pack an existing "
                        "environment, or build one from a lock, not both.")
    if with_python:
        raise PackError("--with-python needs a local environment to copy the interpreter from; "
                        "a lock build has none (the node brings a Python of the target version).")
    return pack_lock(requirements, **opts)
