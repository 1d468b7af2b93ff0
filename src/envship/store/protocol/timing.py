"""The publish/gc protocol's clocks and step hook (docs/store.md)."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_GRACE", "Timing", "Step", "no_step", "wall_iso", "parse_iso"]

DEFAULT_GRACE = 3600.0  # an upload younger than this may be in flight: never collected

Step = Callable[[str], None]
"""Called with a step name between the steps of publish and gc (tests force interleavings)."""


def no_step(name: str) -> None:
    pass


@dataclass(frozen=True)
class Timing:
    """The protocol's clocks; the defaults are what every client of a store must use.

    Publishers and gcs agree on *settle* without talking to each other, so only tests (which
    set it on both sides) change it.
    """

    settle: float = 2.0  # gc: announce -> second look, and done -> marker removed
    sweep_limit: float = 300.0  # gc: no delete is sent later than this after "deleting"
    lease_ttl: float = 3600.0  # a lease older than this (store clock) is a crashed publisher's
    clock_skew: float = 300.0  # assumed bound between the clocks of clients and store
    poll: float = 0.25  # how often a publisher waiting for a sweep looks again

    @property
    def window(self) -> float:
        """A publisher's lease write and sweep listing must both finish within this long of
        its first check (else it looks again): half of *settle*, for margin."""
        return self.settle / 2

    @property
    def lease_refresh(self) -> float:
        """A publisher older than this (monotonic, since its lease write) writes it again."""
        return max(0.0, self.lease_ttl / 2)


def wall_iso(stamp: float | None = None) -> str:
    when = _dt.datetime.fromtimestamp(time.time() if stamp is None else stamp, _dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: Any) -> float | None:
    """POSIX seconds of a `wall_iso` stamp; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
