"""Retry transient store errors with exponential backoff inside a bounded total time."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ...errors import StoreError
from .errors import RETRY_ENV, DeadlinePassed, is_transient, is_unreachable
from .location import StoreLocation

__all__ = ["RetryPolicy", "call", "DEFAULT_RETRY_SECONDS"]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff starts at *initial* seconds, doubles up to *cap*, stops after *total* seconds."""

    total: float = DEFAULT_RETRY_SECONDS
    initial: float = 0.2
    cap: float = 5.0

    @classmethod
    def from_env(cls, total: float | None = None) -> RetryPolicy:
        if total is None:
            raw = os.environ.get(RETRY_ENV, "")
            try:
                total = float(raw) if raw else DEFAULT_RETRY_SECONDS
            except ValueError:
                raise StoreError(
                    f"{RETRY_ENV}={raw!r} is not a number of seconds"
                ) from None
        return cls(total=max(0.0, total))


def call(fn: Callable[[], T], what: str, loc: StoreLocation, policy: RetryPolicy,
         before: float | None = None) -> T:
    """Run *fn*, retrying transient errors until *policy.total* seconds have passed.

    A refused connection or an unknown host fails at once; each retry is logged as a
    warning (the CLI shows it on stderr), so a slow store is never a silent wait. *before*
    (``time.monotonic()``): no attempt starts later; DeadlinePassed instead.
    """
    deadline = time.monotonic() + policy.total
    delay = policy.initial
    attempt = 1
    while True:
        if before is not None and time.monotonic() >= before:
            raise DeadlinePassed(f"{what} in store {loc.url}: time limit reached")
        try:
            return fn()
        except StoreError:
            raise
        except Exception as exc:
            if not is_transient(exc) or is_unreachable(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            pause = min(delay * (0.5 + random.random()), policy.cap, left)
            attempt += 1
            log.warning(
                "store %s: %s failed (%s); retrying in %.1fs (attempt %d, for up to %.0fs)",
                loc.url, what, _short(loc.scrub(str(exc)) or type(exc).__name__), pause,
                attempt, policy.total,
            )
            time.sleep(pause)
            delay = min(delay * 2, policy.cap)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
