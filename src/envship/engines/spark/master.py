"""Spark master URLs: which ones run the executors inside the driver's process tree."""

from __future__ import annotations

import re

__all__ = ["is_local_master"]

_LOCAL_MASTER = re.compile(r"^local(\[[^\]]*\])?$")


def is_local_master(master: str | None) -> bool:
    """True for ``local``, ``local[N]``, ``local[*]``, ``local[N,F]``: executors in the driver."""
    return bool(master) and bool(_LOCAL_MASTER.match(master.strip()))  # type: ignore[union-attr]
