"""Who holds a lock on a file (``/proc/locks``), and whether this user may wait for them."""

from __future__ import annotations

import os

__all__ = ["holders", "trusted", "describe"]


def holders(path: str) -> list[tuple[int, int | None]]:
    """(pid, uid or None if unknown) of the processes holding a lock on *path*, from
    ``/proc/locks`` (Linux); empty if that cannot be told."""
    try:
        st = os.lstat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    out: list[tuple[int, int | None]] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":  # "->": a waiter, not a holder
            continue
        if fields[5] != dev or not fields[4].isdigit():
            continue
        pid = int(fields[4])
        try:
            uid: int | None = os.stat(f"/proc/{pid}").st_uid
        except OSError:  # gone, or hidden from us (hidepid)
            uid = None
        out.append((pid, uid))
    return out


def trusted(found: list[tuple[int, int | None]]) -> bool:
    """Are all *found* holders this user or root (and known at all)?"""
    me = os.getuid()
    return bool(found) and all(uid in (0, me) for _, uid in found)


def describe(found: list[tuple[int, int | None]]) -> str:
    if not found:
        return "a process envship cannot see"
    return ", ".join(f"pid {pid} of " + (f"uid {uid}" if uid is not None else "an unknown user")
                     for pid, uid in found)
