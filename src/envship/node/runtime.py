"""prepare(): resolve an env, fetch and unpack missing layers once per node, assemble its view."""

from __future__ import annotations

import os
import sys
import time

from . import cache
from .areas import Warnings, areas, find_view, make_area
from .cache import fast_view
from .errors import NodeError
from .fetch import FetchInterrupted
from .ref import ref_env_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .interp import Interpreter
    from .resolve import Resolved

__all__ = ["View", "prepare", "ensure_view", "warm", "LAYER_DIRS_ENV", "provided_layers"]

# Layers a cluster manager already unpacked for this process (YARN localized archives, Spark's
# spark.archives), as "<hex>=<dir>" entries separated by os.pathsep. Set by the launcher in the
# container's own working directory; taken as they are, never linked into the node cache (a
# symlink at a cache entry is never followed).
LAYER_DIRS_ENV = "ENVSHIP_LAYER_DIRS"


def provided_layers() -> dict[str, str]:
    """hex digest -> directory of the layers named in ``$ENVSHIP_LAYER_DIRS`` that exist."""
    from .formats import is_hex64

    out: dict[str, str] = {}
    for item in os.environ.get(LAYER_DIRS_ENV, "").split(os.pathsep):
        hex_, sep, path = item.partition("=")
        if sep and is_hex64(hex_) and os.path.isdir(path):
            out[hex_] = os.path.abspath(path)
    return out

_ATTEMPTS = 3  # per layer, when a download breaks off midway


class View:
    """An assembled env view (a tiny venv) in the node cache. Read-only."""

    __slots__ = ("path", "env_id", "_manifest")
    path: str  # the view directory: envs/<env-id>/ in the node cache
    env_id: str
    _manifest: dict[str, Any] | None

    def __init__(self, path: str, env_id: str, manifest: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "env_id", env_id)
        object.__setattr__(self, "_manifest", manifest)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("View is read-only")

    def __repr__(self) -> str:
        return f"View(path={self.path!r}, env_id={self.env_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, View) and (self.path, self.env_id) == (other.path, other.env_id)

    def __hash__(self) -> int:
        return hash((self.path, self.env_id))

    @property
    def bin(self) -> str:
        """The view's bin directory: put it first on PATH."""
        return os.path.join(self.path, "bin")

    @property
    def python(self) -> str:
        """The view's interpreter (``bin/python``): runs with the env's packages importable."""
        return os.path.join(self.path, "bin", "python")

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest the view was assembled from, as a dict."""
        if self._manifest is None:
            import json

            with open(os.path.join(self.path, "manifest.json"), "rb") as f:
                object.__setattr__(self, "_manifest", json.loads(f.read()))
        manifest: dict[str, Any] = self._manifest  # type: ignore[assignment]
        return manifest

    def hold(self) -> int:
        """Mark the view in use until the returned fd is closed: ``cache prune`` keeps it and
        its layers. Pass the fd to child processes (``pass_fds``) to cover them too."""
        root = os.path.dirname(os.path.dirname(self.path))
        from .lockwait import acquire_bounded

        fd = acquire_bounded(cache.lock_path(root, "env-" + self.env_id), shared=True)
        if cache.fast_view(root, self.env_id) is None:
            cache.release(fd)
            raise NodeError(f"env view {self.path} was removed from the node cache; prepare again")
        return fd

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment variables for a process run inside the view."""
        from .activation import view_environ

        return view_environ(self.path, self.env_id, dict(os.environ if base is None else base))


def prepare(
    env_ref: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    verbose: bool = False,
) -> View:
    """Make the env *env_ref* ready in the node cache and return its view.

    *env_ref*: env URI, tag URI, packed directory or presigned manifest. Missing layers are
    fetched (sha256 verified while streaming) and unpacked once per node, whatever the number
    of concurrent callers. Raises NodeError.
    """
    root = cache.cache_root(os.fspath(cache_dir) if cache_dir is not None else None)
    path, env_id = ensure_view(
        os.fspath(env_ref), root, os.fspath(python) if python is not None else None,
        _stderr_log if verbose else None,
    )
    from .verify import verify_view, wanted

    if wanted():
        verify_view(path)
    return View(path, env_id)


def _stderr_log(message: str) -> None:
    sys.stderr.write(f"envship: {message}\n")
    sys.stderr.flush()


def ensure_view(
    env_ref: str,
    root: str,
    python: str | None,
    log: Callable[[str], None] | None,
    warn: Warnings | None = None,
    *,
    shared: bool = False,
) -> tuple[str, str]:
    """(view path, env id) for *env_ref*, building what is missing under the cache locks.

    Entries in *root* that fail the ownership rule are never used: the env is then built in
    this user's own area, with one warning. *shared* (``cache warm``): only *root* is used,
    and every user can read and lock what is built there.
    """
    from .resolve import follow, resolve

    warn = warn or Warnings()
    env_id = ref_env_id(env_ref)
    if env_id is None:  # a tag or a packed dir: find the env id it names (tags are mutable)
        env_ref = follow(env_ref)
        env_id = ref_env_id(env_ref)
    if env_id is not None and not shared:
        ready = find_view(root, env_id, warn)
        if ready:
            return ready, env_id
    resolved = resolve(env_ref)
    ready = fast_view(root, resolved.env_id) if shared else find_view(root, resolved.env_id, warn)
    if ready:
        return ready, resolved.env_id
    manifest = resolved.manifest
    interpreter: Interpreter | None = None
    if not any(lay["kind"] == "python" for lay in manifest["layers"]):
        from .interp import find_node_python

        interpreter = find_node_python(manifest, python)  # fails before any download
    if shared:
        return _build(root, resolved, interpreter, log, shared=True), resolved.env_id
    problem: NodeError | None = None
    for area, own in areas(root, warn):
        try:
            if area != root:
                make_area(area, own)
            if own and isinstance(problem, cache.ReadOnly):  # outside the cache the user chose
                warn.unwritable(problem, area)
            return _build(area, resolved, interpreter, log, mine=area != root), resolved.env_id
        except cache.Untrusted as exc:
            warn.distrust(area, exc)
            problem = exc
        except cache.ReadOnly as exc:
            if log:
                log(f"{exc}; building this env in your own node cache area")
            problem = exc
    raise NodeError(
        f"no usable node cache for this env ({problem}); set ENVSHIP_CACHE (or --cache) to a "
        "directory you own"
    )


def warm(
    env_ref: str, root: str, python: str | None, log: Callable[[str], None] | None
) -> tuple[str, str]:
    """Fetch, unpack and assemble *env_ref* into *root* itself, readable and lockable by every
    user: run as root or a service account, it fills a cache every user trusts."""
    path, env_id = ensure_view(env_ref, root, python, log, shared=True)
    cache.share_area(root)
    from .lockwait import acquire_bounded

    cache.release(acquire_bounded(cache.lock_path(root, "env-" + env_id), shared=True))
    return path, env_id


def _build(
    root: str,
    resolved: Resolved,
    interpreter: Interpreter | None,
    log: Callable[[str], None] | None,
    *,
    shared: bool = False,
    mine: bool = False,
) -> str:
    """Fetch the missing layers of *resolved* into the area *root* and assemble its view.
    *mine*: a per-user area, whose root is ``lstat``-ed like an entry."""
    if not cache.check_entry(root, own_root=mine):
        try:
            os.makedirs(root, 0o755, exist_ok=True)
        except OSError as exc:
            raise cache.ReadOnly(f"cannot create {root}: {exc.strerror}") from None
    if shared:
        cache.share_area(root)
    from .lockwait import acquire_bounded

    global_fd = acquire_bounded(cache.lock_path(root, cache.GLOBAL_LOCK), shared=True)
    try:
        cache.clean_leftovers(root)
        dirs, built_any = _ensure_layers(root, resolved, interpreter, log)
        if interpreter is None:
            from .interp import layer_python

            interpreter = layer_python(dict(dirs)["python"], resolved.manifest)
        path = _ensure_env(root, resolved, dirs, interpreter, log)
    finally:
        cache.release(global_fd)
    if built_any and os.environ.get("ENVSHIP_CACHE_MAX"):
        from .prune import auto_prune

        auto_prune(root, log, keep=resolved.env_id)
    return path


def _ensure_layers(
    root: str,
    resolved: Resolved,
    interpreter: Interpreter | None,
    log: Callable[[str], None] | None,
) -> tuple[list[tuple[str, str]], bool]:
    """(kind, unpacked dir) of every layer in manifest order, and whether any was fetched now.

    Missing layers are fetched in parallel (``$ENVSHIP_NODE_FETCHES`` threads, default 4),
    each under its own lock, so concurrent processes still fetch every blob once.
    """
    layers = resolved.manifest["layers"]
    given = provided_layers()
    hexes = [lay["digest"].split(":", 1)[1] for lay in layers]
    dirs = [(lay["kind"], given.get(hexes[i]) or cache.layer_dir(root, hexes[i]))
            for i, lay in enumerate(layers)]
    todo = [lay for i, lay in enumerate(layers)
            if hexes[i] not in given and not _touch_ready(dirs[i][1])]
    if not todo:
        return dirs, False
    python_lay = next((lay for lay in todo if lay["kind"] == "python"), None)
    if python_lay is not None and any(lay.get("bytecode") == "node" for lay in todo):
        # The python layer's interpreter compiles the other layers: it comes first.
        _ensure_layer(root, python_lay, resolved, None, log)
        todo.remove(python_lay)
    if interpreter is None and any(lay.get("bytecode") == "node" for lay in todo):
        from .interp import layer_python

        interpreter = layer_python(dict(dirs)["python"], resolved.manifest)
    from .fetch import env_int

    workers = max(1, min(len(todo), env_int("ENVSHIP_NODE_FETCHES", 4)))
    todo.sort(key=lambda lay: -int(lay["size"]))  # largest first: the last to finish starts first
    if workers == 1:
        for lay in todo:
            _ensure_layer(root, lay, resolved, interpreter, log)
        return dirs, True
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="envship-fetch") as pool:
        futures = [
            pool.submit(_ensure_layer, root, lay, resolved, interpreter, log) for lay in todo
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:  # the running ones finish (or fail) cleanly; no new ones
                future.cancel()
            raise
    return dirs, True


def _touch_ready(final: str) -> bool:
    """Is the layer committed (and trusted: Untrusted if not)? If so, mark its last use."""
    layers = os.path.dirname(final)
    if not cache.check_entry(os.path.dirname(layers), cache.LAYERS, os.path.basename(final)):
        return False
    try:  # noqa: SIM105 - last use; a read-only or linked-in layer is fine as it is
        os.utime(final)
    except OSError:
        pass
    return True


def _ensure_layer(
    root: str,
    lay: dict[str, Any],
    resolved: Resolved,
    interpreter: Interpreter | None,
    log: Callable[[str], None] | None,
) -> tuple[str, bool]:
    from .verify import record_layer

    hex_ = lay["digest"].split(":", 1)[1]
    final = cache.layer_dir(root, hex_)
    if _touch_ready(final):
        return final, False
    from .lockwait import acquire_bounded

    fd = acquire_bounded(cache.lock_path(root, "layer-" + hex_))
    try:
        if _touch_ready(final):  # another process unpacked it while we waited
            return final, False
        parent = os.path.dirname(final)
        cache.clean_stale(parent, hex_)  # a crashed builder's leftovers: its lock is free now
        start = time.monotonic()
        compiled = 0
        for attempt in range(_ATTEMPTS):
            tmp = cache.temp_dir(parent, hex_)
            try:
                digests: dict[str, str] = {}
                size = _fetch_unpack(resolved.layer_urls[lay["digest"]], lay, tmp, digests)
                compiled = _compile(tmp, lay, resolved.manifest, interpreter)
                record_layer(tmp, digests)
                with open(os.path.join(tmp, ".envship-size"), "w", encoding="ascii") as f:
                    f.write(f"{size}\n")
                cache.make_read_only(tmp)  # before the commit: never writable once in place
                cache.commit_dir(tmp, final)
                break
            except FetchInterrupted as exc:
                cache.remove_tree(tmp)
                if attempt == _ATTEMPTS - 1:
                    raise
                if log:
                    log(f"{exc}; trying again")
                time.sleep(0.5 * 2**attempt)
            except BaseException:
                cache.remove_tree(tmp)
                raise
        if log:
            secs = time.monotonic() - start
            mb = lay["size"] / 1e6
            what = f", compiled {compiled} modules" if compiled else ""
            log(f"fetched {lay['kind']} layer {hex_[:12]} ({mb:.1f} MB{what}) in {secs:.2f} s")
        return final, True
    finally:
        cache.release(fd)


def _compile(
    tmp: str, lay: dict[str, Any], manifest: dict[str, Any], interpreter: Interpreter | None
) -> int:
    """Byte-compile an unpacked schema-2 layer that was not compiled at pack time."""
    from .resolve import is_merged

    if not is_merged(manifest) or lay.get("bytecode") in ("packed", "none") or "package" in lay:
        return 0  # a conda package without packed bytecode runs from its sources
    from .bytecode import compile_tree

    label = f"{lay['kind']} {lay['digest'][:19]}"
    if lay["kind"] == "python":
        # The stdlib of a shipped interpreter: compiled once here, so that running code never
        # writes __pycache__ into the layer. Its own test suites are not worth the time.
        from .interp import layer_python

        python = layer_python(tmp, manifest).path
        mm = ".".join(manifest["python"]["version"].split(".")[:2])
        tree = os.path.join(tmp, "python", "lib", f"python{mm}")
        return compile_tree(tree, python, label, r"[\\/](test|tests|idlelib|site-packages)[\\/]")
    if lay.get("bytecode") != "node":
        return 0
    assert interpreter is not None
    # as pack compiles: not the test suites packages ship (packing.layers.is_test_module)
    return compile_tree(os.path.join(tmp, "site-packages"), interpreter.path, label,
                        r"[\\/](test|tests)[\\/]")


def _fetch_unpack(url: str, lay: dict[str, Any], tmp: str, digests: dict[str, str]) -> int:
    from .extract import Limits, extract_layer
    from .fetch import HashingReader, is_local, open_url, safe_url

    label = f"{lay['kind']} {lay['digest'][:19]}"
    reader = HashingReader(
        open_url(url), lay["size"], f"layer {label}: blob {safe_url(url)}",
        remote=not is_local(url), expected=lay["digest"].split(":", 1)[1],
    )
    try:
        try:
            size = extract_layer(reader, tmp, label, Limits.for_layer(lay), digests)
        except NodeError as exc:
            # A tampered blob usually breaks the tar too: report the digest mismatch if so.
            try:
                reader.drain()
            except (NodeError, OSError):
                raise exc from None
            bad = reader.mismatch()
            raise bad or exc from None
        reader.drain()  # the tar's trailing padding; raises if the digest does not match
    finally:
        reader.close()
    bad = reader.mismatch()
    if bad is not None:
        raise bad
    return size


def _ensure_env(
    root: str,
    resolved: Resolved,
    dirs: list[tuple[str, str]],
    interpreter: Interpreter,
    log: Callable[[str], None] | None,
) -> str:
    from .assemble import assemble_view
    from .formats import is_conda
    from .verify import record_view

    final = cache.view_dir(root, resolved.env_id)
    from .lockwait import acquire_bounded

    fd = acquire_bounded(cache.lock_path(root, "build-" + resolved.env_id))
    try:
        if fast_view(root, resolved.env_id):
            return final
        parent = os.path.dirname(final)
        cache.clean_stale(parent, resolved.env_id)
        if cache.check_entry(root, cache.VIEWS, resolved.env_id):  # stale: interpreter gone
            trash = os.path.join(parent, f"{cache.TRASH_PREFIX}{resolved.env_id}-{os.getpid()}")
            try:
                os.rename(final, trash)
            except PermissionError:  # someone else's (its interpreter is not ours to run?)
                raise cache.ReadOnly(f"cannot replace the env view {final}") from None
            cache.remove_tree(trash)
        tmp = cache.temp_dir(parent, resolved.env_id)
        try:
            if is_conda(resolved.manifest):  # a real conda prefix, not a venv
                from .conda import assemble_conda

                assemble_conda(tmp, final, resolved.env_id, resolved.manifest, resolved.raw,
                               dirs, log)
            else:
                assemble_view(tmp, final, resolved.env_id, resolved.manifest, resolved.raw,
                              dirs, interpreter, log)
            record_view(tmp, [d for _, d in dirs])
            cache.make_read_only(tmp)
            cache.commit_dir(tmp, final)
        except BaseException:
            cache.remove_tree(tmp)
            raise
        return final
    finally:
        cache.release(fd)
