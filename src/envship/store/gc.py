"""Garbage collection: drop old untagged envs, then blobs no remaining manifest references.

Mark, announce (a sweep marker), wait, look at the roots again, delete; see docs/store.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from ..node.formats import (
    BLOBS,
    ENVS,
    LEASES,
    SWEEPS,
    TAGS,
    blob_name_hex,
    env_key,
    presigned_key,
    provenance_key,
)
from . import protocol as p
from .deleting import abort_stale_multipart, still_old
from .io import TEMP_MARK, DeadlinePassed, Entry, Key, StoreIO
from .io.location import blob
from .listing import created_of, env_entries
from .protocol import DEFAULT_GRACE
from .refs import BadManifest, BlobRef, read_all_refs
from .tags import list_tags

__all__ = ["GcResult", "collect", "parse_duration", "DEFAULT_GRACE"]

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `12h`, `7d`, `2w` (or `0`) -> seconds. A number needs its unit: is
    `--older-than 7` a week or 7 seconds (every env)?"""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise StoreError(f"bad duration {text!r}: use e.g. 90s, 30m, 12h, 7d or 2w")
    if not m.group(2) and float(m.group(1)) != 0:
        raise StoreError(f"duration {text!r} has no unit: write {m.group(1)}s, "
                         f"{m.group(1)}m, {m.group(1)}h, {m.group(1)}d or {m.group(1)}w")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@dataclass(frozen=True)
class GcResult:
    envs_removed: tuple[str, ...]
    blobs_removed: tuple[str, ...]  # digests
    bytes_freed: int
    temp_removed: int  # leftovers of interrupted uploads (temp files, S3 multipart uploads)
    blobs_kept_young: int  # unreferenced but inside the grace period
    dry_run: bool
    envs_spared: tuple[str, ...] = ()  # doomed, but leased or tagged by the second look
    blobs_spared: int = 0  # candidates a publish claimed (or a new manifest used) meanwhile
    leases_removed: int = 0  # stale leases of publishers that died
    complete: bool = True  # False: the sweep hit its time limit; run gc again
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "envs_removed": list(self.envs_removed),
            "blobs_removed": list(self.blobs_removed),
            "bytes_freed": self.bytes_freed,
            "temp_removed": self.temp_removed,
            "blobs_kept_young": self.blobs_kept_young,
            "dry_run": self.dry_run,
            "envs_spared": list(self.envs_spared),
            "blobs_spared": self.blobs_spared,
            "leases_removed": self.leases_removed,
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
        }


def _env_dates(io: StoreIO, env_ids: set[str]) -> list[tuple[str, float | None]]:
    """(env id, created) newest first, as `store ls` dates them; provenance read in parallel."""
    entries = {e: info for e, info in env_entries(io).items() if e in env_ids}
    if not entries:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(entries))) as pool:
        dates = list(pool.map(lambda e: (e, created_of(io, e, entries[e])), entries))
    dates.sort(key=lambda d: (-(d[1] or 0.0), d[0]))
    return dates


def _doomed_envs(envs: list[tuple[str, float | None]], tagged: set[str], keep: int | None,
                 older_than: float | None, now: float) -> list[str]:
    if keep is None and older_than is None:
        return []
    doomed = []
    for rank, (env_id, created) in enumerate(envs):  # newest first
        if env_id in tagged:
            continue
        if keep is not None and rank < keep:
            continue
        if older_than is not None and (created is None or created > now - older_than):
            continue
        doomed.append(env_id)
    return doomed


def _refs(io: StoreIO, env_ids: list[str]) -> dict[str, tuple[BlobRef, ...]]:
    """Blobs of every listed manifest (vanished ones dropped); unreadable manifests stop gc."""
    out: dict[str, tuple[BlobRef, ...]] = {}
    for env_id, refs in read_all_refs(io, env_ids).items():
        if isinstance(refs, BadManifest) and refs.refs is not None:
            log.warning("env %s: %s; its blobs are kept", env_id, refs.reason)
            refs = refs.refs
        if isinstance(refs, BadManifest):
            raise StoreError(
                f"gc stopped: cannot read env {env_id} in store {io.url} ({refs.reason}); its "
                "blobs cannot be told apart, so nothing was collected: fix or remove that "
                "manifest first (`envship store verify` lists all such damage)"
            )
        if refs is not None:
            out[env_id] = refs
    return out


def _small_temp_entries(io: StoreIO) -> list[Entry]:
    """Temp files of interrupted small writes: manifests, tags, leases, markers (rename only)."""
    if not io.caps.atomic_rename:
        return []
    return [e for folder in (ENVS, TAGS, LEASES, SWEEPS) for e in io.entries(folder)
            if TEMP_MARK in e.name]


@dataclass
class _Roots:
    """What keeps blobs and envs alive, as seen at one moment."""

    refs: dict[str, tuple[BlobRef, ...]]  # env id -> blobs, every manifest listed
    tagged: set[str]
    leased_envs: set[str]
    leased_blobs: set[str]
    stale_leases: list[Key]

    def used(self, doomed: set[str]) -> set[str]:
        out = set(self.leased_blobs)
        for env_id, refs in self.refs.items():
            if env_id not in doomed:
                out.update(r.digest for r in refs)
        return out


def _roots(io: StoreIO, timing: p.Timing, known: dict[str, tuple[BlobRef, ...]] | None = None
           ) -> _Roots:
    """Leases, then tags, then manifests: a publisher that finished (lease gone) between two
    of these listings wrote its tag or manifest before, so it is seen in the next."""
    now = time.time()
    live: list[p.LeaseInfo] = []
    stale: list[p.LeaseInfo] = []
    for lease in p.list_leases(io):
        (live if lease.live(timing, now) else stale).append(lease)
    tagged = set(list_tags(io).values())
    listed = list(env_entries(io))
    known = known or {}
    refs = {e: known[e] for e in listed if e in known}
    refs.update(_refs(io, [e for e in listed if e not in known]))
    return _Roots(
        refs=refs,
        tagged=tagged,
        leased_envs={lease.env_id for lease in live if lease.env_id},
        leased_blobs={d for lease in live for d in lease.blobs},
        stale_leases=[lease.key for lease in stale],
    )


def _other_sweeps(io: StoreIO) -> list[tuple[p.Sweep, float]]:
    """Markers of earlier gcs, with when we saw them (monotonic)."""
    seen = time.monotonic()
    return [(p.read_sweep(io, sid, mtime), seen) for sid, mtime in p.sweep_names(io)]


def _finished(sweep: p.Sweep, seen: float, timing: p.Timing) -> bool:
    """Safe to remove another gc's marker: done for `settle` already, or its gc must be dead."""
    if sweep.state in (p.DONE, p.GONE):
        return time.monotonic() - seen >= timing.settle
    now = time.time()
    if sweep.state == p.DELETING:
        if sweep.deadline is not None:
            return now > sweep.deadline + timing.clock_skew + timing.settle
        return sweep.mtime is not None and now > (
            sweep.mtime + sweep.limit + timing.clock_skew + timing.settle
        )
    # Marked: a live gc moves on after `settle`; one silent this long is gone.
    return sweep.mtime is not None and now > sweep.mtime + timing.lease_ttl + timing.clock_skew


def collect(
    io: StoreIO,
    *,
    keep: int | None = None,
    older_than: float | None = None,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
    timing: p.Timing | None = None,
    step: p.Step = p.no_step,
) -> GcResult:
    """Remove envs beyond *keep* newest / older than *older_than* (never tagged ones), then
    blobs referenced by no remaining manifest and older than *grace* seconds.

    Neither an env a concurrent publish re-uses or tags, nor a blob it found present or
    uploaded, is removed: see the protocol in docs/store.md.
    """
    if keep is not None and keep < 0:
        raise StoreError(f"--keep must be 0 or more, not {keep}")
    timing = timing or p.Timing()
    began = time.monotonic()
    now = time.time()
    cutoff = now - grace
    step("start")
    # Mark. Blobs are listed before the roots: a blob uploaded later is not a candidate.
    others = [] if dry_run else _other_sweeps(io)
    blob_entries = io.entries(BLOBS)
    roots = _roots(io, timing)
    protected = roots.tagged | roots.leased_envs
    doomed: list[str] = []
    if keep is not None or older_than is not None:
        envs = _env_dates(io, set(roots.refs))
        doomed = _doomed_envs(envs, protected, keep, older_than, now)
    used = roots.used(set(doomed))
    candidates: dict[str, Entry] = {}
    temps: list[Key] = []
    young = 0
    for entry in blob_entries + _small_temp_entries(io):
        old = entry.mtime is not None and entry.mtime < cutoff
        if entry.name.startswith(".") and TEMP_MARK in entry.name:
            if old:
                temps.append(entry.key)
            continue
        hex_ = blob_name_hex(entry.name)
        if hex_ is None or f"sha256:{hex_}" in used:
            continue
        if not old:
            young += 1
            continue
        candidates[f"sha256:{hex_}"] = entry
    step("marked")
    if dry_run:
        return GcResult(
            tuple(doomed), tuple(sorted(candidates)),
            sum(e.size or 0 for e in candidates.values()), len(temps), young, True,
            seconds=time.monotonic() - began,
        )

    removed_envs: tuple[str, ...] = ()
    removed: list[str] = []
    spared_envs: tuple[str, ...] = ()
    spared = 0
    complete = True
    if doomed or candidates:
        sweep = p.Sweep(p.new_sweep_id(), p.MARKED, frozenset(candidates), frozenset(doomed),
                        timing.sweep_limit)
        step("announcing")
        p.write_sweep(io, sweep)
        step("announced")
        # Any publish whose lease was not written yet by now lists sweeps after our marker:
        # it sees it. Wait out publishes that listed sweeps just before it.
        time.sleep(timing.settle)
        deadline = time.monotonic() + timing.sweep_limit
        sweep = dataclasses.replace(sweep, state=p.DELETING,
                                    deadline=time.time() + timing.sweep_limit)
        p.write_sweep(io, sweep)
        step("deleting")
        try:
            # Second look, after "deleting" is visible: a publisher that saw "marked" has its
            # lease in place, so it is in this look.
            again = _roots(io, timing, roots.refs)
            roots.stale_leases = again.stale_leases
            keep_alive = again.tagged | again.leased_envs
            final_doomed = [e for e in doomed if e not in keep_alive]
            spared_envs = tuple(e for e in doomed if e in keep_alive)
            used = again.used(set(final_doomed))
            final = sorted(d for d in candidates if d not in used)
            spared = len(candidates) - len(final)
            step("looked-again")
            keys = [key(e) for e in final_doomed
                    for key in (env_key, presigned_key, provenance_key)]
            io.remove_many(keys, "env manifests", before=deadline)  # before their blobs
            removed_envs = tuple(final_doomed)
            for e in final_doomed:
                log.info("removed env %s from %s", e, io.url)
            io.remove_many([blob(d) for d in final], "collected blobs", before=deadline)
            removed = final
            step("deleted")
        except DeadlinePassed:
            complete = False
            log.warning("gc of %s stopped at its time limit; run it again", io.url)
        finally:
            with contextlib.suppress(StoreError):
                p.write_sweep(io, dataclasses.replace(sweep, state=p.DONE))
        step("done")
        # Keep the marker a little: a publisher that checked a blob just before we deleted
        # it may list sweeps only now.
        time.sleep(timing.settle)
        p.remove_sweep(io, sweep.sweep_id)
        step("removed")
    io.remove_many(roots.stale_leases, "stale leases")
    io.remove_many([k for k in temps if still_old(io, k, cutoff)], "temp files")
    for other, seen in others:
        if _finished(other, seen, timing):
            with contextlib.suppress(StoreError):
                p.remove_sweep(io, other.sweep_id)
    if removed:  # the team build cache must not point at what is gone
        from .teamcache import forget

        forget(io, set(removed))
    now = time.time()  # the leases as they are now: a ship may have started meanwhile
    uploading = {d for lease in p.list_leases(io) if lease.live(timing, now) for d in lease.blobs}
    aborted = abort_stale_multipart(io, cutoff, dry_run, uploading)
    freed = sum(candidates[d].size or 0 for d in removed)
    return GcResult(
        removed_envs, tuple(removed), freed, len(temps) + aborted, young, False,
        envs_spared=spared_envs, blobs_spared=spared, leases_removed=len(roots.stale_leases),
        complete=complete, seconds=time.monotonic() - began,
    )
