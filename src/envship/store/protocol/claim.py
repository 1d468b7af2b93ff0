"""A publisher's side of the protocol: lease, look for sweeps, check what the store holds.

`claim()` answers "is the manifest there, which blobs are there" in a way a concurrent gc
cannot falsify: once it returns, every blob it calls present stays present (and the env stays
listed) until the lease is dropped, provided the caller writes its manifest before then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..io import StoreIO
from . import leases, sweeps
from .timing import Step, Timing, no_step

__all__ = ["Claim", "claim", "refresh", "release"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    lease: leases.Lease
    manifest_present: bool
    present: frozenset[str]  # digests found in place (right size)
    waited: float  # seconds spent waiting for a sweep to finish


@dataclass(frozen=True)
class _Checks:
    manifest: Callable[[], bool]
    blob: Callable[[str], bool]
    workers: int
    blobs: Callable[[Sequence[str]], set[str]] | None = None  # many at once (one listing)


def _check_all(pool: ThreadPoolExecutor, checks: _Checks, digests: Sequence[str],
               manifest: bool = True) -> tuple[bool | None, dict[str, bool]]:
    man: Future[bool] | None = pool.submit(checks.manifest) if manifest else None
    if checks.blobs is not None and digests:
        found = checks.blobs(digests)
        flags = {d: d in found for d in digests}
    else:
        futs = {d: pool.submit(checks.blob, d) for d in digests}
        flags = {d: f.result() for d, f in futs.items()}
    return (None if man is None else man.result()), flags


def _expired(sweep: sweeps.Sweep, first_seen: float, timing: Timing) -> bool:
    """No delete of *sweep* can still arrive (its gc is done, or dead and past its limit)."""
    if time.monotonic() > first_seen + sweep.limit + timing.settle:
        return True
    now = time.time()
    if sweep.deadline is not None and now > sweep.deadline + timing.clock_skew:
        return True
    return sweep.mtime is not None and now > (
        sweep.mtime + sweep.limit + timing.clock_skew + timing.settle
    )


def _wait_out(io: StoreIO, sweep: sweeps.Sweep, timing: Timing, step: Step,
              states: tuple[str, ...], waited: list[float]) -> sweeps.Sweep:
    """Poll *sweep* while it is in one of *states* and may still delete; its last state."""
    first_seen = time.monotonic()
    step("waiting")
    log.info("waiting for gc sweep %s in %s to finish", sweep.sweep_id, io.url)
    while sweep.state in states and not _expired(sweep, first_seen, timing):
        time.sleep(timing.poll)
        sweep = sweeps.read_sweep(io, sweep.sweep_id, sweep.mtime)
    waited[0] += time.monotonic() - first_seen
    return sweep


def _resolve(io: StoreIO, names: list[tuple[str, float | None]], env_id: str,
             digests: Sequence[str], timing: Timing, step: Step, waited: list[float],
             writes: bool) -> tuple[bool, set[str]]:
    """Sweeps listed after (or with) our lease: what must be checked again once they are done.

    Runs after the lease is written, so a sweep still `marked` now will see the lease in its
    second look and spare our blobs (our manifest, written before the lease goes, keeps them
    after). An env a sweep means to remove is different unless the caller *writes* a root
    before it drops the lease (a tag): a publish whose manifest is already there writes
    nothing, so it waits for the sweep to end and looks again. Returns (recheck manifest,
    blobs to recheck).
    """
    manifest, blobs = False, set()
    mine = set(digests)
    for sweep_id, mtime in names:
        sweep = sweeps.read_sweep(io, sweep_id, mtime)
        if sweep.state == sweeps.GONE:  # finished and removed: what it held is unknown
            return True, mine
        if not sweep.threatens(env_id, mine):
            continue
        if env_id in sweep.envs and not writes:
            sweep = _wait_out(io, sweep, timing, step, (sweeps.MARKED, sweeps.DELETING), waited)
        elif sweep.state == sweeps.MARKED:
            continue
        else:
            sweep = _wait_out(io, sweep, timing, step, (sweeps.DELETING,), waited)
        if sweep.state == sweeps.GONE:
            return True, mine
        manifest = manifest or env_id in sweep.envs
        blobs |= mine & sweep.blobs
    return manifest, blobs


def _round(io: StoreIO, env_id: str, digests: Sequence[str], checks: _Checks,
           timing: Timing, step: Step, lease: leases.Lease | None, writes: bool = False
           ) -> Claim:
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=checks.workers + 2,
                            thread_name_prefix="envship-check") as pool:
        if lease is None:
            # One round trip: the lease, the sweep listing and every check at once. Safe as
            # long as the lease and the listing both land within `window` of the start (a
            # gc waits `settle` between announcing and looking, and keeps its marker for
            # `settle` after its last delete); otherwise we look again, in order.
            def write_lease() -> tuple[leases.Lease, float]:
                step("lease-writing")
                made = leases.take_lease(io, env_id, digests, timing)
                step("lease-written")
                return made, time.monotonic()

            def list_sweeps() -> tuple[list[tuple[str, float | None]], float]:
                step("sweeps-listing")
                found = sweeps.sweep_names(io)
                step("sweeps-listed")
                return found, time.monotonic()

            f_lease = pool.submit(write_lease)
            f_names = pool.submit(list_sweeps)
            failed: BaseException | None = None
            try:
                manifest, present = _check_all(pool, checks, digests)
                step("checks-done")
            except BaseException as exc:
                failed = exc
            try:
                lease, lease_done = f_lease.result()
            except BaseException:
                f_names.exception()
                raise
            try:
                if failed is not None:
                    raise failed
                names, listed = f_names.result()
                if max(lease_done, listed) - start >= timing.window:
                    log.info("slow lease/listing (%.2fs): checking %s again, in order",
                             max(lease_done, listed) - start, io.url)
                    step("slow")
                    names = sweeps.sweep_names(io)
                    manifest, present = _check_all(pool, checks, digests)
            except BaseException:
                leases.drop_lease(io, lease)
                raise
        else:
            # A refresh: the lease is in place before anything is read, in order.
            names = sweeps.sweep_names(io)
            manifest, present = _check_all(pool, checks, digests)
        try:
            step("checked")
            waited = [0.0]
            again_manifest, again = _resolve(io, names, env_id, digests, timing, step, waited,
                                             writes)
            if again_manifest or again:
                step("rechecking")
                m2, p2 = _check_all(pool, checks, sorted(again), manifest=again_manifest)
                if m2 is not None:
                    manifest = m2
                present.update(p2)
        except BaseException:
            leases.drop_lease(io, lease)
            raise
    step("claimed")
    return Claim(lease, bool(manifest), frozenset(d for d, ok in present.items() if ok),
                 waited[0])


def claim(
    io: StoreIO,
    env_id: str,
    digests: Sequence[str],
    check_manifest: Callable[[], bool],
    check_blob: Callable[[str], bool],
    timing: Timing,
    *,
    workers: int = 4,
    step: Step = no_step,
    writes: bool = False,
    check_blobs: Callable[[Sequence[str]], set[str]] | None = None,
) -> Claim:
    """Lease *env_id* and *digests*, then report what the store holds (see module doc).

    *writes*: the caller always writes a file gc reads as a root (a tag) before release.
    *check_blobs*: checks many digests at once (a listing), used instead of *check_blob*.
    """
    step("begin")
    checks = _Checks(check_manifest, check_blob, max(1, workers), check_blobs)
    return _round(io, env_id, list(digests), checks, timing, step, None, writes)


def refresh(
    io: StoreIO,
    current: Claim,
    check_manifest: Callable[[], bool],
    check_blob: Callable[[str], bool],
    timing: Timing,
    *,
    workers: int = 4,
    step: Step = no_step,
    check_blobs: Callable[[Sequence[str]], set[str]] | None = None,
) -> Claim:
    """*current* if its lease is young enough to rely on, else a new lease and new checks."""
    if time.monotonic() - current.lease.written < timing.lease_refresh:
        return current
    step("refreshing")
    lease = leases.take_lease(io, current.lease.env_id, current.lease.blobs, timing)
    leases.drop_lease(io, current.lease)
    checks = _Checks(check_manifest, check_blob, max(1, workers), check_blobs)
    return _round(io, lease.env_id, list(lease.blobs), checks, timing, step, lease)


def release(io: StoreIO, current: Claim) -> None:
    """Drop the lease: call after the manifest (or tag) is written, or on failure."""
    leases.drop_lease(io, current.lease)
