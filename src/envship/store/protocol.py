"""The publish / gc protocol: leases (pending references) and sweep markers (docs/store.md).

A publisher announces what it is about to reference (`leases/`) and then looks for sweeps; a gc
announces what it is about to delete (`sweeps/`), waits, and then looks at leases and manifests
again. Whichever side writes second sees the other, so no interleaving loses a blob.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError
from . import retry
from .fs import StoreLocation, mtime_of, read_bounded
from .transfer import TEMP_MARK, write_bytes

__all__ = [
    "DEFAULT_GRACE",
    "Timing",
    "Step",
    "no_step",
    "Lease",
    "LeaseInfo",
    "Sweep",
    "take_lease",
    "drop_lease",
    "list_leases",
    "sweep_names",
    "new_sweep_id",
    "read_sweep",
    "write_sweep",
    "remove_sweep",
    "MARKED",
    "DELETING",
    "DONE",
    "GONE",
    "remove",
    "wall_iso",
]

log = logging.getLogger(__name__)

_ENV_ID_RE = re.compile(r"[0-9a-f]{64}")

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


def _parse_iso(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def remove(loc: StoreLocation, path: str, policy: retry.RetryPolicy) -> None:
    """Delete one small file; already gone is fine."""

    def rm() -> None:
        with contextlib.suppress(FileNotFoundError):
            loc.fs.rm_file(path)

    try:
        retry.call(rm, f"deleting {path}", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, "deleting a file", loc) from None


def _s3_ls(loc: StoreLocation, path: str) -> list[dict[str, Any]]:
    """One ListObjectsV2 per 1000 keys: s3fs's `ls` spends a second request on an empty folder,
    and these folders are empty on nearly every ship."""
    bucket, _, prefix = path.partition("/")
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix.rstrip("/") + "/",
                              "Delimiter": "/"}
    while True:
        page = loc.fs.call_s3("list_objects_v2", **kwargs)
        for obj in page.get("Contents", []):
            out.append({"name": f"{bucket}/{obj['Key']}", "size": obj.get("Size", 0),
                        "LastModified": obj.get("LastModified"), "type": "file"})
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return out
        kwargs["ContinuationToken"] = token


def _ls(loc: StoreLocation, folder: str, policy: retry.RetryPolicy) -> list[dict[str, Any]]:
    def ls() -> list[dict[str, Any]]:
        path = loc.path(folder)
        if loc.protocol in ("s3", "s3a") and callable(getattr(loc.fs, "call_s3", None)):
            return _s3_ls(loc, path)
        loc.fs.invalidate_cache(path)  # another process's write must be seen now
        try:
            return loc.ls(path, detail=True)
        except FileNotFoundError:
            return []

    try:
        return retry.call(ls, f"listing {folder}/", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, f"listing {folder}/", loc) from None


def _name(entry: dict[str, Any]) -> str:
    return str(entry["name"]).rstrip("/").rpartition("/")[2]


def _visible(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".") and TEMP_MARK not in name


# -- leases: a publisher's pending references ----------------------------------------------
@dataclass(frozen=True)
class Lease:
    """A lease this process wrote: `leases/<env-id>.<random>.json`."""

    path: str
    env_id: str
    blobs: tuple[str, ...]
    written: float  # time.monotonic() just before the write was sent


@dataclass(frozen=True)
class LeaseInfo:
    """A lease found in the store."""

    path: str
    env_id: str | None
    blobs: frozenset[str]
    mtime: float | None

    def live(self, timing: Timing, now: float) -> bool:
        """Could its publisher still be running? Unknown age or unreadable: yes."""
        return self.mtime is None or self.mtime > now - timing.lease_ttl - timing.clock_skew


def take_lease(loc: StoreLocation, env_id: str, blobs: Iterable[str],
               policy: retry.RetryPolicy, timing: Timing) -> Lease:
    """Write a lease naming *env_id* and *blobs*; gc treats them as roots while it lives."""
    digests = tuple(sorted(set(blobs)))
    path = loc.path("leases", f"{env_id}.{uuid.uuid4().hex[:12]}.json")
    data = json.dumps(
        {"env": env_id, "blobs": list(digests), "created": wall_iso(), "ttl": timing.lease_ttl},
        sort_keys=True,
    ).encode() + b"\n"
    written = time.monotonic()
    try:
        retry.call(lambda: write_bytes(loc, path, data), "writing a lease", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, f"writing lease for env {env_id}", loc) from None
    return Lease(path, env_id, digests, written)


def drop_lease(loc: StoreLocation, lease: Lease, policy: retry.RetryPolicy) -> None:
    """Remove *lease*; failing only delays gc (the lease goes stale), so it is logged only."""
    try:
        remove(loc, lease.path, policy)
    except StoreError as exc:
        log.warning("could not remove lease %s (gc removes it once stale): %s", lease.path, exc)


def list_leases(loc: StoreLocation, policy: retry.RetryPolicy) -> list[LeaseInfo]:
    """Every lease in the store; one that cannot be read counts as holding everything."""
    out = []
    for entry in _ls(loc, "leases", policy):
        name = _name(entry)
        if not _visible(name):
            continue
        path = str(entry["name"])

        def read(p: str = path) -> bytes:
            data: bytes = read_bounded(loc, p, "a lease")
            return data

        try:
            obj = json.loads(retry.call(read, "reading a lease", loc, policy))
            env_id = obj["env"]
            blobs = frozenset(str(d) for d in obj["blobs"])
            if not isinstance(env_id, str) or not _ENV_ID_RE.fullmatch(env_id):
                raise ValueError("bad env id")
        except FileNotFoundError:
            continue  # its publisher finished meanwhile (its manifest is then in place)
        except (ValueError, KeyError, TypeError, RecursionError, StoreError) as exc:
            raise StoreError(
                f"lease {loc.url_of('leases', name)} cannot be read ({exc}); gc cannot tell "
                "what it protects: remove it if no ship is running"
            ) from None
        except Exception as exc:
            raise retry.as_store_error(exc, "reading a lease", loc) from None
        out.append(LeaseInfo(path, env_id, blobs, mtime_of(entry)))
    return out


# -- sweeps: a gc's announced deletions ------------------------------------------------------
MARKED, DELETING, DONE, GONE = "marked", "deleting", "done", "gone"


@dataclass(frozen=True)
class Sweep:
    """`sweeps/<id>.json`: what one gc may delete, and how far it got."""

    sweep_id: str
    state: str  # marked -> deleting -> done; "gone" when the file vanished
    blobs: frozenset[str] = field(default_factory=frozenset)
    envs: frozenset[str] = field(default_factory=frozenset)
    limit: float = 0.0  # seconds after "deleting" during which it may still delete
    deadline: float | None = None  # wall clock of the gc: deleting + limit
    mtime: float | None = None

    def threatens(self, env_id: str, blobs: Iterable[str]) -> bool:
        return env_id in self.envs or not self.blobs.isdisjoint(blobs)

    def to_json(self) -> bytes:
        return json.dumps({
            "id": self.sweep_id,
            "state": self.state,
            "blobs": sorted(self.blobs),
            "envs": sorted(self.envs),
            "limit": self.limit,
            "deadline": None if self.deadline is None else wall_iso(self.deadline),
        }, sort_keys=True).encode() + b"\n"


def new_sweep_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:12]


def _sweep_path(loc: StoreLocation, sweep_id: str) -> str:
    return loc.path("sweeps", f"{sweep_id}.json")


def sweep_names(loc: StoreLocation, policy: retry.RetryPolicy) -> list[tuple[str, float | None]]:
    """(sweep id, store mtime) of every sweep marker: one LIST."""
    return [
        (_name(e)[: -len(".json")], mtime_of(e))
        for e in _ls(loc, "sweeps", policy)
        if _visible(_name(e))
    ]


def read_sweep(loc: StoreLocation, sweep_id: str, policy: retry.RetryPolicy,
               mtime: float | None = None) -> Sweep:
    path = _sweep_path(loc, sweep_id)

    def read() -> bytes:
        data: bytes = read_bounded(loc, path, "a sweep marker")
        return data

    try:
        obj = json.loads(retry.call(read, "reading a sweep marker", loc, policy))
        return Sweep(
            sweep_id,
            str(obj["state"]),
            frozenset(str(d) for d in obj["blobs"]),
            frozenset(str(e) for e in obj["envs"]),
            float(obj["limit"]),
            _parse_iso(obj.get("deadline")),
            mtime,
        )
    except FileNotFoundError:
        return Sweep(sweep_id, GONE, mtime=mtime)
    except (ValueError, KeyError, TypeError, RecursionError, StoreError):
        # Unreadable: assume the worst (it may delete anything) for as long as it could.
        return Sweep(sweep_id, DELETING, limit=Timing().sweep_limit, mtime=mtime)
    except Exception as exc:
        raise retry.as_store_error(exc, "reading a sweep marker", loc) from None


def write_sweep(loc: StoreLocation, sweep: Sweep, policy: retry.RetryPolicy) -> None:
    path = _sweep_path(loc, sweep.sweep_id)
    try:
        retry.call(lambda: write_bytes(loc, path, sweep.to_json()),
                   f"writing sweep marker ({sweep.state})", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, "writing a sweep marker", loc) from None


def remove_sweep(loc: StoreLocation, sweep_id: str, policy: retry.RetryPolicy) -> None:
    remove(loc, _sweep_path(loc, sweep_id), policy)
