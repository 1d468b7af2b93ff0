"""Bounded waits for node cache locks: a wait that gives up on a holder this user does not
trust (another uid), so no user can stall another's run forever."""

from __future__ import annotations

import os
import sys
import time

from .cache import NodeError, Untrusted, acquire
from .holders import describe, holders, trusted

__all__ = ["LOCK_WAIT_VAR", "LockBusy", "acquire_bounded"]

# Seconds a run waits for a lock held by another process before it looks at who holds it:
# a holder of this user or root is waited for (a download in progress), anyone else is not.
LOCK_WAIT_VAR = "ENVSHIP_LOCK_WAIT"
_DEFAULT_WAIT = 30.0


class LockBusy(Untrusted):
    """A cache lock held for too long by a process this user does not trust."""


def _limit() -> float:
    raw = os.environ.get(LOCK_WAIT_VAR, "")
    try:
        value = float(raw) if raw.strip() else _DEFAULT_WAIT
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):  # also NaN
        raise NodeError(f"${LOCK_WAIT_VAR}={raw!r} is not a number of seconds (like 30 or 0.5)")
    return value


def _private(path: str) -> bool:
    """Whether only this user (and root) can reach *path*: a directory above it is this
    user's and closed to everyone else (the user's own area is 0700). Then any holder is this
    user or root, even one /proc/locks does not show (another pid namespace, overlayfs)."""
    me = os.getuid()
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        try:
            st = os.stat(parent)
        except OSError:
            return False
        if st.st_uid == me and not st.st_mode & 0o077:
            return True
        up = os.path.dirname(parent)
        if up == parent:
            return False
        parent = up


def acquire_bounded(path: str, *, shared: bool = False) -> int:
    """flock *path* like :func:`cache.acquire`, waiting at most ``$ENVSHIP_LOCK_WAIT`` seconds
    (default 30) for a holder this user does not trust: LockBusy then (the caller builds in
    this user's own area). A holder of this user or root is waited for, with a line on stderr
    naming the lock each time the limit passes."""
    limit = _limit()  # a bad value is an error even when no one holds the lock
    fd = acquire(path, shared=shared, blocking=False)
    if fd is not None:
        return fd
    start = time.monotonic()
    check_at = start + limit
    delay = 0.005
    while True:
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
        fd = acquire(path, shared=shared, blocking=False)
        if fd is not None:
            return fd
        now = time.monotonic()
        if now < check_at:
            continue
        found = holders(path)
        fd = acquire(path, shared=shared, blocking=False)  # released while we looked?
        if fd is not None:
            return fd
        waited = f"{now - start:.0f} s"
        if not trusted(found) and not _private(path):
            raise LockBusy(f"node cache lock {path} is held by {describe(found)}, not by you or "
                           f"root (waited {waited})")
        sys.stderr.write(f"envship: waiting for node cache lock {path} ({waited} so far), held "
                         f"by {describe(found)}: another process is preparing this env\n")
        sys.stderr.flush()
        check_at = now + max(limit, 1.0)
