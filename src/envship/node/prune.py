"""Node cache listing and LRU eviction that never removes what a running env view uses."""

from __future__ import annotations

import os
import time

from . import cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CacheEntry", "cache_areas", "list_cache", "prune", "auto_prune"]


class CacheEntry:
    """One layer or env view in the node cache."""

    __slots__ = ("kind", "name", "path", "size", "last_use", "in_use", "layers")

    def __init__(
        self, kind: str, name: str, path: str, size: int, last_use: float, in_use: bool,
        layers: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind  # "layer" | "env"
        self.name = name  # layer hex / env id
        self.path = path
        self.size = size
        self.last_use = last_use
        self.in_use = in_use
        self.layers = layers  # env views: the layer hexes they use

    def as_dict(self) -> dict[str, object]:
        return {s: getattr(self, s) for s in self.__slots__ if s != "layers" or self.kind == "env"}


def _names(root: str, sub: str) -> list[str]:
    """Committed entries of ``root/sub`` this user may trust (and so list and remove)."""
    try:
        names = sorted(n for n in os.listdir(os.path.join(root, sub)) if not n.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for n in names:
        try:
            if cache.check_entry(root, sub, n):
                out.append(n)
        except cache.Untrusted:
            continue  # another user's entry (or a plant): not ours to list or evict
    return out


def _in_use(root: str, env_id: str) -> bool:
    try:
        fd = cache.acquire(cache.lock_path(root, "env-" + env_id), blocking=False)
    except cache.NodeError:
        return True  # a lock we may not take: count the view as in use
    cache.release(fd)
    return fd is None


def _layer_size(path: str) -> int:
    try:
        with open(os.path.join(path, ".envship-size"), encoding="ascii") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return sum(
            os.lstat(os.path.join(d, n)).st_size for d, _, ns in os.walk(path) for n in ns
        )


def cache_areas(root: str) -> list[str]:
    """The node cache *root* (if it exists) and this user's own areas that exist and pass the
    ownership rule (``users/<uid>/`` under it, ``$TMPDIR/envship-<uid>/``): where a run of
    this user may have built an env (see areas.py)."""
    from .areas import user_areas

    out = [root] if os.path.isdir(root) else []
    for area, own in user_areas(root):
        try:
            if cache.check_entry(area, own_root=True) and (own or cache.check_entry(
                    root, cache.USERS, entry=False)):
                out.append(area)
        except cache.Untrusted:
            continue
    return out


def list_cache(root: str) -> list[CacheEntry]:
    """Every committed layer and env view of the node cache *root* and of this user's own
    areas, with size, last use and whether a process uses it."""
    return [e for area in cache_areas(root) for e in _list_area(area)]


def _list_area(root: str) -> list[CacheEntry]:
    views: list[CacheEntry] = []
    for env_id in _names(root, cache.VIEWS):
        path = cache.view_dir(root, env_id)
        try:
            with open(os.path.join(path, "envship-layers"), encoding="ascii") as f:
                layers = tuple(line.strip() for line in f if line.strip())
        except OSError:
            layers = ()
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:  # removed meanwhile
            continue
        views.append(CacheEntry("env", env_id, path, 0, mtime, _in_use(root, env_id), layers))
    out: list[CacheEntry] = []
    for hex_ in _names(root, cache.LAYERS):
        path = cache.layer_dir(root, hex_)
        users = [v for v in views if hex_ in v.layers]
        try:
            last = max([os.stat(path).st_mtime] + [v.last_use for v in users])
        except FileNotFoundError:
            continue
        out.append(
            CacheEntry("layer", hex_, path, _layer_size(path), last, any(v.in_use for v in users))
        )
    return out + views


def _evict(entry: CacheEntry) -> None:
    parent = os.path.dirname(entry.path)
    trash = os.path.join(parent, f"{cache.TRASH_PREFIX}{entry.name}-{os.getpid()}")
    os.rename(entry.path, trash)  # readers never see a half-removed directory
    cache.remove_tree(trash)


def _evict_views(root: str, views: list[CacheEntry]) -> bool:
    """Remove all *views*, or none if a process runs in one of them (it holds a shared lock)."""
    if not all(cache.mine(v.path) for v in views):  # root's entries, in a shared cache
        return False
    fds: list[int] = []
    try:
        for v in views:
            try:
                fd = cache.acquire(cache.lock_path(root, "env-" + v.name), blocking=False)
            except cache.NodeError:
                return False
            if fd is None:
                return False
            fds.append(fd)
        for v in views:  # still holding the locks: no process can start in them meanwhile
            _evict(v)
        return True
    finally:
        for fd in fds:
            cache.release(fd)


def prune(
    root: str, max_size: int | None = None, *, blocking: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[CacheEntry] | None:
    """Remove leftovers, then least recently used layers (and their views) until the layers
    total at most *max_size* bytes, in the node cache *root* and in each of this user's own
    areas (the limit applies to each). Layers of an env view a process runs in are kept.

    *max_size* 0 removes everything no process uses; None only leftovers. Returns what was
    removed, or None if not *blocking* and an env is being prepared in *root*.
    """
    if max_size is not None and (type(max_size) is not int or max_size < 0):
        # "-1G" parsed somewhere as -1 must not mean "remove everything"
        raise cache.NodeError(f"cache size limit {max_size!r}: give a number of bytes, 0 or "
                              "more (parse_size('20G') reads sizes; 0 removes all not in use)")
    removed: list[CacheEntry] = []
    for area in cache_areas(root):
        done = _prune_area(area, max_size, blocking=blocking, log=log)
        if done is None and area == root:
            return None
        removed.extend(done or ())
    return removed


def _prune_area(
    root: str, max_size: int | None = None, *, blocking: bool = True,
    log: Callable[[str], None] | None = None, keep: str | None = None,
) -> list[CacheEntry] | None:
    """:func:`prune` in one area; the view of the env id *keep* (just built, about to run)
    stays with its layers."""
    path = cache.lock_path(root, cache.GLOBAL_LOCK)
    if blocking:  # not forever for a holder that is neither this user nor root
        from .lockwait import acquire_bounded

        gfd: int | None = acquire_bounded(path)
    else:
        gfd = cache.acquire(path, blocking=False)
    if gfd is None:
        return None
    removed: list[CacheEntry] = []
    try:
        # No env is being prepared (we hold the global lock): every temp dir is a leftover.
        for sub in (cache.LAYERS, cache.VIEWS):
            parent = os.path.join(root, sub)
            for n in os.listdir(parent) if os.path.isdir(parent) else []:
                path = os.path.join(parent, n)
                if n.startswith((cache.TMP_PREFIX, cache.TRASH_PREFIX)) and cache.mine(path):
                    cache.remove_tree(path)
        entries = _list_area(root)
        kept = {h for e in entries if e.kind == "env" and e.name == keep for h in e.layers}
        for e in entries:
            if e.name == keep or (e.kind == "layer" and e.name in kept):
                e.in_use = True
        layers = {e.name: e for e in entries if e.kind == "layer"}
        views = [e for e in entries if e.kind == "env" and e.name != keep]
        for v in views:  # a view whose layer is gone cannot run: drop it
            if any(h not in layers for h in v.layers) and _evict_views(root, [v]):
                removed.append(v)
        views = [v for v in views if v not in removed]
        total = sum(e.size for e in layers.values())
        if max_size is not None:
            for lay in sorted(layers.values(), key=lambda e: e.last_use):
                if total <= max_size:
                    break
                users = [v for v in views if lay.name in v.layers]
                if lay.in_use or not cache.mine(lay.path) or not _evict_views(root, users):
                    continue
                removed.extend(users)
                views = [v for v in views if v not in users]
                _evict(lay)
                removed.append(lay)
                total -= lay.size
                if log:
                    log(f"evicted layer {lay.name[:12]} ({lay.size / 1e6:.1f} MB)")
    finally:
        cache.release(gfd)
    return removed


def auto_prune(root: str, log: Callable[[str], None] | None, keep: str) -> None:
    """Prune down to ``$ENVSHIP_CACHE_MAX`` unless another process is busy with the cache;
    the env *keep* (just built) stays, even if it alone is over the limit."""
    from .fetch import env_int

    started = time.monotonic()
    result = _prune_area(root, env_int("ENVSHIP_CACHE_MAX", 0), blocking=False, log=log,
                         keep=keep)
    if log and result:
        log(f"pruned {len(result)} cache entries in {time.monotonic() - started:.2f} s")
