"""Garbage collection: drop old untagged envs, then blobs no remaining manifest references."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from ..errors import EnvshipError, StoreError
from . import retry
from .fetch import read_manifest
from .fs import StoreLocation, mtime_of
from .listing import EnvInfo, env_entries, list_envs
from .tags import list_tags
from .transfer import TEMP_MARK

__all__ = ["GcResult", "collect", "parse_duration", "DEFAULT_GRACE"]

log = logging.getLogger(__name__)

DEFAULT_GRACE = 3600.0  # an upload younger than this may be in flight: never collected
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BLOB_RE = re.compile(r"([0-9a-f]{64})\.tar\.gz")


def parse_duration(text: str) -> float:
    """`90`, `90s`, `30m`, `12h`, `7d`, `2w` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise StoreError(f"bad duration {text!r}: use e.g. 90s, 30m, 12h, 7d or 2w")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@dataclass(frozen=True)
class GcResult:
    envs_removed: tuple[str, ...]
    blobs_removed: tuple[str, ...]  # digests
    bytes_freed: int
    temp_removed: int  # leftovers of interrupted uploads (temp files, S3 multipart uploads)
    blobs_kept_young: int  # unreferenced but inside the grace period
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "envs_removed": list(self.envs_removed),
            "blobs_removed": list(self.blobs_removed),
            "bytes_freed": self.bytes_freed,
            "temp_removed": self.temp_removed,
            "blobs_kept_young": self.blobs_kept_young,
            "dry_run": self.dry_run,
        }


def _doomed_envs(envs: list[EnvInfo], tagged: set[str], keep: int | None,
                 older_than: float | None, now: float) -> list[str]:
    if keep is None and older_than is None:
        return []
    doomed = []
    for rank, info in enumerate(envs):  # newest first
        if info.env_id in tagged:
            continue
        if keep is not None and rank < keep:
            continue
        if older_than is not None and (info.created is None or info.created > now - older_than):
            continue
        doomed.append(info.env_id)
    return doomed


def _referenced(loc: StoreLocation, policy: retry.RetryPolicy, skip: set[str]) -> set[str]:
    """Digests used by every manifest still in the store; unreadable manifests stop gc."""
    refs: set[str] = set()
    for env_id in env_entries(loc, policy):
        if env_id in skip:
            continue
        try:
            manifest = read_manifest(loc, env_id, policy)
        except EnvshipError as exc:
            raise StoreError(
                f"gc stopped: cannot read env {env_id} ({exc}); its blobs cannot be told "
                "apart, so nothing was collected: fix or remove that manifest first"
            ) from None
        refs.update(lay.digest for lay in manifest.layers)
    return refs


def _entries(loc: StoreLocation, policy: retry.RetryPolicy, *folder: str
             ) -> list[dict[str, Any]]:
    def ls() -> list[dict[str, Any]]:
        try:
            return list(loc.fs.ls(loc.path(*folder), detail=True))
        except FileNotFoundError:
            return []

    try:
        return retry.call(ls, f"listing {'/'.join(folder)}/", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, f"listing {'/'.join(folder)}/", loc) from None


def _blob_entries(loc: StoreLocation, policy: retry.RetryPolicy) -> list[dict[str, Any]]:
    return _entries(loc, policy, "blobs", "sha256")


def _small_temp_entries(loc: StoreLocation, policy: retry.RetryPolicy) -> list[dict[str, Any]]:
    """Temp files of interrupted manifest/tag writes (filesystems with rename only)."""
    if loc.object_store:
        return []
    return [
        e for folder in ("envs", "tags") for e in _entries(loc, policy, folder)
        if TEMP_MARK in str(e["name"]).rpartition("/")[2]
    ]


def _rm(loc: StoreLocation, path: str, policy: retry.RetryPolicy) -> None:
    def rm() -> None:
        with contextlib.suppress(FileNotFoundError):
            loc.fs.rm_file(path)

    try:
        retry.call(rm, f"deleting {path}", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, "deleting a file", loc) from None


def _still_old(loc: StoreLocation, path: str, cutoff: float) -> bool:
    """Re-check right before deleting: a blob re-uploaded meanwhile is young again."""
    with contextlib.suppress(Exception):
        loc.fs.invalidate_cache(path)
        stamp = mtime_of(loc.fs.info(path))
        return stamp is not None and stamp < cutoff
    return False


def _abort_stale_multipart(loc: StoreLocation, cutoff: float, dry_run: bool) -> int:
    """S3: abort multipart uploads of blobs started before *cutoff* (killed publishers).

    They are invisible (never completed) but their parts cost storage until aborted.
    """
    call_s3 = getattr(loc.fs, "call_s3", None)
    if call_s3 is None or not loc.object_store:
        return 0
    bucket, _, prefix = loc.path("blobs", "sha256", "").partition("/")
    try:
        uploads = call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
    except Exception as exc:  # listing uploads may need a permission ship does not
        log.info("cannot list multipart uploads in %s: %s", loc.url, loc.scrub(str(exc)))
        return 0
    count = 0
    for upload in uploads.get("Uploads", []):
        started = mtime_of({"LastModified": upload.get("Initiated")})
        if started is None or started >= cutoff:
            continue
        count += 1
        if not dry_run:
            with contextlib.suppress(Exception):
                call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                        UploadId=upload["UploadId"])
    return count


def collect(
    loc: StoreLocation,
    policy: retry.RetryPolicy,
    *,
    keep: int | None = None,
    older_than: float | None = None,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
) -> GcResult:
    """Remove envs beyond *keep* newest / older than *older_than* (never tagged ones), then
    blobs referenced by no remaining manifest and older than *grace* seconds."""
    if keep is not None and keep < 0:
        raise StoreError(f"--keep must be 0 or more, not {keep}")
    now = time.time()
    cutoff = now - grace
    # Blobs are listed before manifests: a blob uploaded later is not a candidate at all,
    # and one listed now whose manifest lands later is protected by the grace period.
    blob_entries = _blob_entries(loc, policy)
    envs = list_envs(loc, policy)
    tagged = set(list_tags(loc, policy).values())
    doomed = _doomed_envs(envs, tagged, keep, older_than, now)
    if not dry_run:
        for env_id in doomed:
            _rm(loc, loc.env_path(env_id), policy)  # the manifest first: the env disappears
            for suffix in (".presigned.json", ".provenance.json"):
                _rm(loc, loc.env_path(env_id, suffix), policy)
            log.info("removed env %s from %s", env_id, loc.url)
    refs = _referenced(loc, policy, set(doomed))
    removed: list[str] = []
    freed = temps = young = 0
    for entry in blob_entries + _small_temp_entries(loc, policy):
        path = str(entry["name"])
        name = path.rstrip("/").rpartition("/")[2]
        stamp = mtime_of(entry)
        old = stamp is not None and stamp < cutoff
        if name.startswith(".") and TEMP_MARK in name:
            if old and (dry_run or _still_old(loc, path, cutoff)):
                temps += 1
                if not dry_run:
                    _rm(loc, path, policy)
            continue
        m = _BLOB_RE.fullmatch(name)
        if not m or f"sha256:{m.group(1)}" in refs:
            continue
        if not old:
            young += 1
            continue
        if not dry_run:
            if not _still_old(loc, path, cutoff):
                young += 1
                continue
            _rm(loc, path, policy)
        removed.append(f"sha256:{m.group(1)}")
        freed += int(entry.get("size") or 0)
    temps += _abort_stale_multipart(loc, cutoff, dry_run)
    return GcResult(tuple(doomed), tuple(removed), freed, temps, young, dry_run)
