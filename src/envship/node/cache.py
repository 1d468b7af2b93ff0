"""Node cache layout, locks and the ownership rule: `layers/<hex>/`, `envs/<env-id>/`, `locks/`,
`users/<uid>/`; rename-as-commit; an entry is used only if its owner is this user or root
(which area a run uses: areas.py)."""

from __future__ import annotations

import fcntl
import os
import stat

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
    "Untrusted",
    "ReadOnly",
    "check_entry",
    "make_read_only",
    "USERS",
    "share_area",
    "NodeError",
    "mine",
]

TMP_PREFIX = ".tmp-"  # a directory being built; never used by a reader
TRASH_PREFIX = ".trash-"  # a directory being removed; never used by a reader
GLOBAL_LOCK = "cache"  # shared while preparing an env, exclusive while pruning
# The node cache's layout, spelled here only (the store's is in formats.py).
LAYERS = "layers"  # layers/<hex>/: one unpacked, read-only layer
VIEWS = "envs"  # envs/<env-id>/: one assembled, read-only env view
LOCKS = "locks"  # locks/<name>.lock
USERS = "users"  # users/<uid>/: a per-user area, used where the shared entries are not trusted


class Untrusted(NodeError):
    """A cache entry (or a directory above it) fails the ownership rule: it is never used."""


class ReadOnly(NodeError):
    """This user cannot create entries in that cache area (e.g. one filled by root)."""


def _problem(st: os.stat_result, *, entry: bool) -> str | None:
    """Why a file with status *st* may not be trusted, or None.

    Trusted: owned by this user or root, not writable by group or others. A directory above an
    entry may be world-writable if it is sticky (like /tmp): others can add names there, which
    fail this rule themselves, but cannot rename or remove ours.
    """
    uid = st.st_uid
    if uid != 0 and uid != os.getuid():
        return f"owned by uid {uid}, not by you or root"
    if st.st_mode & 0o022 and (entry or not st.st_mode & stat.S_ISVTX):
        return "writable by group or others"
    return None


def check_entry(root: str, *parts: str, own_root: bool = False, entry: bool = True) -> bool:
    """Does ``root/parts...`` exist and pass the ownership rule? False if it does not exist;
    Untrusted if it (or a directory between *root* and it) exists and fails the rule.

    Every level is ``lstat``-ed: a symlink inside the cache is never followed. *root* itself is
    followed (the user chose it) unless *own_root* (an area this process creates itself).
    Not *entry*: the last part is a directory entries live in (it may be sticky and
    world-writable, like /tmp), not an entry itself.
    """
    try:
        st = os.lstat(root) if own_root else os.stat(root)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise Untrusted(f"node cache {root}: cannot inspect it ({exc.strerror})") from None
    path = root
    last = len(parts)
    for i in range(last + 1):
        if i:
            path = os.path.join(path, parts[i - 1])
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return False
            except OSError as exc:
                why = f"cannot inspect it ({exc.strerror})"
                raise Untrusted(f"node cache entry {path}: {why}") from None
        if not stat.S_ISDIR(st.st_mode):
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise Untrusted(f"node cache entry {path} is {what}")
        problem = _problem(st, entry=entry and i == last and i > 0)
        if problem:
            raise Untrusted(f"node cache entry {path} is {problem}")
    return True


def share_area(root: str) -> None:
    """Make *root*'s directories readable by every user (``cache warm``): ``layers/``,
    ``envs/``, ``locks/`` 0755 whatever the umask, and ``users/`` (sticky, like /tmp) where
    each user builds what the shared entries lack."""
    for sub in (LAYERS, VIEWS, LOCKS):
        path = os.path.join(root, sub)
        if not os.path.lexists(path):
            os.mkdir(path, 0o755)
        if check_entry(root, sub, entry=False) and os.lstat(path).st_mode & 0o7777 != 0o755:
            os.chmod(path, 0o755)
    users = os.path.join(root, USERS)
    if not os.path.lexists(users):
        os.mkdir(users, 0o755)
    if check_entry(root, USERS, entry=False) and os.lstat(users).st_mode & 0o7777 != 0o1777:
        os.chmod(users, 0o1777)


def make_read_only(path: str) -> None:
    """Directories 0555, files 0444 (0555 if executable), links untouched: a committed layer or
    view that running code cannot change. Only what differs is chmod-ed (hard links into a
    layer are already read-only, and may belong to another user)."""
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                mode = 0o555 if st.st_mode & 0o111 else 0o444
                if st.st_mode & 0o7777 != mode:  # also under umask 077: every user reads it
                    os.chmod(p, mode)
        os.chmod(dirpath, 0o555)


def cache_root(explicit: str | None = None) -> str:
    """The node cache directory: *explicit*, else ``$ENVSHIP_CACHE``, else ``~/.cache/envship``."""
    root = explicit or os.environ.get("ENVSHIP_CACHE") or "~/.cache/envship"
    return os.path.abspath(os.path.expanduser(root))


def layer_dir(root: str, hex_digest: str) -> str:
    return os.path.join(root, LAYERS, hex_digest)


def view_dir(root: str, env_id: str) -> str:
    return os.path.join(root, VIEWS, env_id)


def lock_path(root: str, name: str) -> str:
    """Lock files live apart from the data so that removing a layer never races its lock."""
    return os.path.join(root, LOCKS, name + ".lock")


def acquire(path: str, *, shared: bool = False, blocking: bool = True) -> int | None:
    """flock *path* and return the fd (None if not *blocking* and it is held elsewhere).

    The fd is close-on-exec unless the caller makes it inheritable; a lock held through
    ``os.execv`` keeps an env view marked as in use for the command's whole lifetime.
    The lock file is opened read-only with ``O_NOFOLLOW`` (a symlink planted there is never
    followed, nor created through) and must pass the ownership rule (Untrusted otherwise);
    ReadOnly when it does not exist and cannot be created.
    """
    flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    locks = os.path.dirname(path)
    root = os.path.dirname(locks)
    while True:
        fd = _open_lock(path, root, locks)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return None
        # A pruner may have unlinked the file between our open and flock: lock the live inode.
        try:
            if os.lstat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _open_lock(path: str, root: str, locks: str) -> int:
    # flock needs no write access: a lock file root made 0644 serves every user.
    flags = os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    for attempt in (0, 1):
        if not check_entry(root, os.path.basename(locks), entry=False):
            if attempt:
                break
            try:
                os.makedirs(locks, 0o755, exist_ok=True)
            except OSError as exc:
                raise ReadOnly(
                    f"cannot create {locks}: {exc.strerror}; the node cache is not writable by "
                    "you"
                ) from None
            continue
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if os.path.islink(path):
                raise Untrusted(f"node cache lock {path} is a symlink") from None
            if os.path.lexists(path):
                why = f"cannot open it ({exc.strerror})"
                raise Untrusted(f"node cache lock {path}: {why}") from None
            raise ReadOnly(
                f"cannot create lock file {path}: {exc.strerror}; the node cache is not writable "
                "by you: choose another one with --cache / ENVSHIP_CACHE"
            ) from None
        st = os.fstat(fd)
        problem = _problem(st, entry=True)
        if problem is None and (not stat.S_ISREG(st.st_mode) or st.st_nlink != 1):
            problem = "not a plain file"
        if problem:
            os.close(fd)
            raise Untrusted(f"node cache lock {path} is {problem}")
        if st.st_uid == os.getuid() and st.st_mode & 0o044 != 0o044:
            os.fchmod(fd, 0o644)  # under umask 077: other users may still share-lock it
        return fd
    raise ReadOnly(f"cannot create {locks}")


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def remove_tree(path: str) -> None:
    """Remove *path* (a directory tree, a file or a link); missing is fine. Read-only
    directories (committed layers and views are 0555) are made writable first."""
    import shutil

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    for dirpath, _dirnames, _ in os.walk(path):
        try:  # noqa: SIM105
            os.chmod(dirpath, 0o755)
        except OSError:  # not ours: rmtree reports what it cannot remove
            pass
    try:  # noqa: SIM105 - contextlib costs start-up time on the warm path
        shutil.rmtree(path)
    except FileNotFoundError:
        pass


def commit_dir(tmp: str, final: str) -> bool:
    """Rename the finished *tmp* directory to *final*: the commit point.

    Returns False (and removes *tmp*) when *final* already exists, built by someone else and
    trusted; Untrusted if what is there fails the ownership rule.
    """
    try:
        os.rename(tmp, final)
        return True
    except OSError:
        parent = os.path.dirname(final)
        if check_entry(os.path.dirname(parent), os.path.basename(parent), os.path.basename(final)):
            remove_tree(tmp)
            return False
        raise


def mine(path: str) -> bool:
    """Is *path* ours to clean up? In a shared directory, other users' leftovers are theirs."""
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return False
    me = os.getuid()
    return me == 0 or uid == me


def clean_stale(parent: str, name: str) -> None:
    """Remove leftover temp dirs for *name* in *parent*; the caller holds *name*'s build lock."""
    prefix = TMP_PREFIX + name + "-"
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.startswith(prefix) and mine(os.path.join(parent, entry)):
            remove_tree(os.path.join(parent, entry))


def clean_leftovers(root: str) -> None:
    """Remove temp dirs of crashed builders (their build lock is free) and trash of a crashed
    prune. Call with the global lock held shared: no prune is running meanwhile."""
    for sub, lock_prefix in ((LAYERS, "layer-"), (VIEWS, "build-")):
        parent = os.path.join(root, sub)
        try:
            entries = os.listdir(parent)
        except FileNotFoundError:
            continue
        for entry in entries:
            path = os.path.join(parent, entry)
            if not entry.startswith((TRASH_PREFIX, TMP_PREFIX)) or not mine(path):
                continue
            if entry.startswith(TRASH_PREFIX):
                remove_tree(path)
                continue
            name = entry[len(TMP_PREFIX) :].rsplit("-", 1)[0]
            try:
                fd = acquire(lock_path(root, lock_prefix + name), blocking=False)
            except NodeError:  # a lock that fails the rule (or cannot be made) is not ours
                continue
            if fd is not None:
                try:
                    remove_tree(path)
                finally:
                    release(fd)


def temp_dir(parent: str, name: str) -> str:
    """A fresh build directory next to where *name* will be committed (same filesystem)."""
    try:
        os.makedirs(parent, 0o755, exist_ok=True)
    except PermissionError as exc:
        raise ReadOnly(f"cannot create {parent}: {exc.strerror}") from None
    if not check_entry(os.path.dirname(parent), os.path.basename(parent), entry=False):
        raise ReadOnly(f"{parent} disappeared")
    path = os.path.join(parent, f"{TMP_PREFIX}{name}-{os.getpid()}")
    if os.path.lexists(path) and not mine(path):  # another user's process with our pid
        raise Untrusted(f"node cache entry {path} belongs to another user")
    remove_tree(path)
    try:
        os.mkdir(path, 0o755)
    except PermissionError as exc:
        raise ReadOnly(f"cannot create entries in {parent}: {exc.strerror}") from None
    return path


def fast_view(root: str, env_id: str) -> str | None:
    """The ready view for *env_id*, or None: a few ``lstat`` calls, nothing read.

    Untrusted if the view (or ``envs/``, or the cache root) fails the ownership rule.
    """
    if not check_entry(root, VIEWS, env_id):
        return None
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
