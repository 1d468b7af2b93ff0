"""Node cache layout and locks: `layers/<hex>/`, `envs/<env-id>/`, `locks/`, rename-as-commit."""

from __future__ import annotations

import fcntl
import os

from .errors import NodeError

__all__ = [
    "cache_root",
    "layer_dir",
    "view_dir",
    "lock_path",
    "acquire",
    "release",
    "remove_tree",
    "commit_dir",
    "TMP_PREFIX",
    "TRASH_PREFIX",
    "GLOBAL_LOCK",
    "clean_stale",
    "clean_leftovers",
    "temp_dir",
    "fast_view",
]

TMP_PREFIX = ".tmp-"  # a directory being built; never used by a reader
TRASH_PREFIX = ".trash-"  # a directory being removed; never used by a reader
GLOBAL_LOCK = "cache"  # shared while preparing an env, exclusive while pruning


def cache_root(explicit: str | None = None) -> str:
    """The node cache directory: *explicit*, else ``$ENVSHIP_CACHE``, else ``~/.cache/envship``."""
    root = explicit or os.environ.get("ENVSHIP_CACHE") or "~/.cache/envship"
    return os.path.abspath(os.path.expanduser(root))


def layer_dir(root: str, hex_digest: str) -> str:
    return os.path.join(root, "layers", hex_digest)


def view_dir(root: str, env_id: str) -> str:
    return os.path.join(root, "envs", env_id)


def lock_path(root: str, name: str) -> str:
    """Lock files live apart from the data so that removing a layer never races its lock."""
    return os.path.join(root, "locks", name + ".lock")


def acquire(path: str, *, shared: bool = False, blocking: bool = True) -> int | None:
    """flock *path* and return the fd (None if not *blocking* and it is held elsewhere).

    The fd is close-on-exec unless the caller makes it inheritable; a lock held through
    ``os.execv`` keeps an env view marked as in use for the command's whole lifetime.
    """
    flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise NodeError(
                f"cannot open lock file {path}: {exc.strerror}; check that the node cache "
                "is writable or choose another one with --cache / ENVSHIP_CACHE"
            ) from exc
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return None
        # A pruner may have unlinked the file between our open and flock: lock the live inode.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def remove_tree(path: str) -> None:
    """Remove *path* (a directory tree, a file or a link); missing is fine."""
    import shutil

    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
        return
    try:  # noqa: SIM105 - contextlib costs start-up time on the warm path
        shutil.rmtree(path)
    except FileNotFoundError:
        pass


def commit_dir(tmp: str, final: str) -> bool:
    """Rename the finished *tmp* directory to *final*: the commit point.

    Returns False (and removes *tmp*) when *final* already exists, built by someone else.
    """
    try:
        os.rename(tmp, final)
        return True
    except OSError:
        if os.path.isdir(final):
            remove_tree(tmp)
            return False
        raise


def clean_stale(parent: str, name: str) -> None:
    """Remove leftover temp dirs for *name* in *parent*; the caller holds *name*'s build lock."""
    prefix = TMP_PREFIX + name + "-"
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.startswith(prefix):
            remove_tree(os.path.join(parent, entry))


def clean_leftovers(root: str) -> None:
    """Remove temp dirs of crashed builders (their build lock is free) and trash of a crashed
    prune. Call with the global lock held shared: no prune is running meanwhile."""
    for sub, lock_prefix in (("layers", "layer-"), ("envs", "build-")):
        parent = os.path.join(root, sub)
        try:
            entries = os.listdir(parent)
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.startswith(TRASH_PREFIX):
                remove_tree(os.path.join(parent, entry))
            elif entry.startswith(TMP_PREFIX):
                name = entry[len(TMP_PREFIX) :].rsplit("-", 1)[0]
                fd = acquire(lock_path(root, lock_prefix + name), blocking=False)
                if fd is not None:
                    try:
                        remove_tree(os.path.join(parent, entry))
                    finally:
                        release(fd)


def temp_dir(parent: str, name: str) -> str:
    """A fresh build directory next to where *name* will be committed (same filesystem)."""
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f"{TMP_PREFIX}{name}-{os.getpid()}")
    remove_tree(path)
    os.mkdir(path, 0o755)
    return path


def fast_view(root: str, env_id: str) -> str | None:
    """The ready view for *env_id*, or None: a couple of stats, nothing read."""
    path = view_dir(root, env_id)
    try:
        os.stat(os.path.join(path, "bin", "python"))  # follows the link: interpreter still there
    except OSError:
        return None
    try:  # noqa: SIM105 - contextlib costs start-up time on the warm path
        os.utime(path)  # last use, for LRU eviction
    except OSError:  # a read-only cache prepared by someone else still runs
        pass
    return path
