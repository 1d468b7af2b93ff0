"""Which node cache area a run uses: the shared root while its entries pass the ownership
rule and its locks are not held against this user, else the user's own area."""

from __future__ import annotations

import os

from .cache import (
    USERS,
    NodeError,
    ReadOnly,
    Untrusted,
    acquire,
    check_entry,
    fast_view,
    lock_path,
    release,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `typing` costs start-up time on the warm path
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["user_areas", "make_area", "Warnings", "areas", "find_view", "hold_view"]


def user_areas(root: str) -> list[tuple[str, bool]]:
    """Where this user's own entries go when the shared ones fail the rule, in order of
    preference: (area root, whether that root is ours to lstat). No home directory needed."""
    import tempfile

    uid = str(os.getuid())
    return [
        (os.path.join(root, USERS, uid), False),
        (os.path.join(tempfile.gettempdir(), f"envship-{uid}"), True),
    ]


def make_area(area: str, own: bool) -> None:
    """Create the per-user *area* (and ``users/``, sticky like /tmp, if it is the first)."""
    parent = os.path.dirname(area)
    if not own and not os.path.isdir(parent):
        try:
            os.mkdir(parent, 0o755)
            os.chmod(parent, 0o1777)  # every user's own area lives here
        except FileExistsError:
            pass
        except OSError as exc:
            raise ReadOnly(f"cannot create {parent}: {exc.strerror}") from None
    try:
        os.mkdir(area, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ReadOnly(f"cannot create {area}: {exc.strerror}") from None


class Warnings:
    """One run's view of which cache areas failed the ownership rule; prints the first such
    finding as one ``warning:`` line on stderr (a run may meet several untrusted entries)."""

    __slots__ = ("distrusted", "printed")

    def __init__(self) -> None:
        self.distrusted: set[str] = set()
        self.printed = False

    def distrust(self, area: str, exc: NodeError) -> None:
        """Use nothing more from *area* in this run, and say why (once)."""
        self.distrusted.add(area)
        self._say(f"{exc}; not using it: this env runs from your own node cache area (see "
                  "'Trust model' in docs/node.md)")

    def unwritable(self, exc: NodeError, area: str) -> None:
        """Say (once) that the env is built in *area*, outside the cache the user chose."""
        self._say(f"{exc}; this env runs from {area} instead (set ENVSHIP_CACHE or --cache "
                  "to a directory you can write)")

    def _say(self, text: str) -> None:
        if not self.printed:
            import sys

            self.printed = True
            sys.stderr.write(f"envship: warning: {text}\n")
            sys.stderr.flush()


def areas(root: str, warn: Warnings) -> Iterator[tuple[str, bool]]:
    """The cache areas to use, in order, as (path, own): the cache *root*, then this user's own
    area (``users/<uid>/`` under it, else ``<tmp>/envship-<uid>``, *own*: created by and for
    this user) wherever it passes the rule; areas *warn* distrusts are skipped."""
    if root not in warn.distrusted:
        yield root, False
    for area, own in user_areas(root):
        if area in warn.distrusted:
            continue
        try:
            # lstat: users/<uid> made a symlink by someone else is never followed
            check_entry(area, own_root=True)
            if not own:
                check_entry(root, USERS, entry=False)
        except Untrusted as exc:
            warn.distrust(area, exc)
            continue
        yield area, own


def find_view(root: str, env_id: str, warn: Warnings) -> str | None:
    """The ready, trusted view of *env_id* in any area, or None."""
    for area, _ in areas(root, warn):
        try:
            ready = fast_view(area, env_id)
        except Untrusted as exc:
            warn.distrust(area, exc)
            continue
        if ready:
            return ready
    return None


def hold_view(root: str, env_id: str, warn: Warnings) -> tuple[str, int | None] | None:
    """Like :func:`find_view`, also taking the view's shared in-use lock (None: a cache this
    user cannot create lock files in, filled by someone else).

    Never waits: a view whose in-use lock is held exclusively — by a pruner about to remove
    it, or by another user to stall this run — counts as absent; in an area shared with other
    users, that area is not used for the rest of the run (with one warning) unless the holder
    is this user or root.
    """
    for area, _ in areas(root, warn):
        fd = None
        try:
            if fast_view(area, env_id) is None:
                continue
            lock = lock_path(area, "env-" + env_id)
            try:
                fd = acquire(lock, shared=True, blocking=False)
            except ReadOnly:
                fd = None
            else:
                if fd is None:
                    from .holders import describe, holders, trusted

                    found = holders(lock)
                    if area == root and not trusted(found):  # own areas: only ours lock them
                        raise Untrusted(f"node cache lock {lock} is held by {describe(found)}, "
                                        "not by you or root")
                    continue
            path = fast_view(area, env_id)  # a pruner may have removed it before we locked
        except Untrusted as exc:
            release(fd)
            warn.distrust(area, exc)
            continue
        if path:
            return path, fd
        release(fd)
    return None
