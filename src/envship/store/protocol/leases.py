"""Leases: a publisher's pending references, `leases/<env-id>.<random>.json`; gc treats what
a live lease names as roots."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from ...errors import ManifestError, StoreError
from ...node.formats import LEASES, is_hex64, lease_key, parse_document
from ..io import TEMP_MARK, Key, NotFound, StoreIO
from .timing import Timing, wall_iso

__all__ = ["Lease", "LeaseInfo", "take_lease", "drop_lease", "list_leases", "visible"]

log = logging.getLogger(__name__)


def visible(name: str) -> bool:
    """A finished protocol file (not a temp file of an interrupted write)."""
    return name.endswith(".json") and not name.startswith(".") and TEMP_MARK not in name


@dataclass(frozen=True)
class Lease:
    """A lease this process wrote."""

    key: Key
    env_id: str
    blobs: tuple[str, ...]
    written: float  # time.monotonic() just before the write was sent


@dataclass(frozen=True)
class LeaseInfo:
    """A lease found in the store."""

    key: Key
    env_id: str | None
    blobs: frozenset[str]
    mtime: float | None

    def live(self, timing: Timing, now: float) -> bool:
        """Could its publisher still be running? Unknown age or unreadable: yes."""
        return self.mtime is None or self.mtime > now - timing.lease_ttl - timing.clock_skew


def take_lease(io: StoreIO, env_id: str, blobs: Iterable[str], timing: Timing) -> Lease:
    """Write a lease naming *env_id* and *blobs*; gc treats them as roots while it lives."""
    digests = tuple(sorted(set(blobs)))
    key = lease_key(f"{env_id}.{uuid.uuid4().hex[:12]}")
    data = json.dumps(
        {"env": env_id, "blobs": list(digests), "created": wall_iso(), "ttl": timing.lease_ttl},
        sort_keys=True,
    ).encode() + b"\n"
    written = time.monotonic()
    io.write(key, data, f"lease for env {env_id}")
    return Lease(key, env_id, digests, written)


def drop_lease(io: StoreIO, lease: Lease) -> None:
    """Remove *lease*; failing only delays gc (the lease goes stale), so it is logged only."""
    try:
        io.remove(lease.key, "a lease")
    except StoreError as exc:
        log.warning("could not remove lease %s (gc removes it once stale): %s",
                    io.path(lease.key), exc)


def list_leases(io: StoreIO) -> list[LeaseInfo]:
    """Every lease in the store; one that cannot be read stops the caller (gc cannot tell
    what it protects)."""
    out = []
    for entry in io.entries(LEASES):
        if not visible(entry.name):
            continue
        try:
            obj = parse_document(io.read(entry.key, "a lease"), io.url_of(entry.key), "lease")
            env_id = obj["env"]
            blobs = frozenset(str(d) for d in obj["blobs"])
            if not is_hex64(env_id):
                raise ValueError("bad env id")
        except NotFound:
            continue  # its publisher finished meanwhile (its manifest is then in place)
        except (ManifestError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"lease {io.url_of(entry.key)} cannot be read ({exc}); gc cannot tell what it "
                "protects: remove it if no ship is running"
            ) from None
        out.append(LeaseInfo(entry.key, env_id, blobs, entry.mtime))
    return out
