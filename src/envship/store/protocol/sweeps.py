"""Sweep markers: a gc's announced deletions, `sweeps/<id>.json`, and how far it got."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...errors import ManifestError
from ...node.formats import SWEEPS, parse_document, sweep_key
from ..io import NotFound, Refused, StoreIO
from .leases import visible
from .timing import Timing, parse_iso, wall_iso

__all__ = ["MARKED", "DELETING", "DONE", "GONE", "Sweep", "new_sweep_id", "sweep_names",
           "read_sweep", "write_sweep", "remove_sweep"]

MARKED, DELETING, DONE, GONE = "marked", "deleting", "done", "gone"


@dataclass(frozen=True)
class Sweep:
    """What one gc may delete, and how far it got."""

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


def sweep_names(io: StoreIO) -> list[tuple[str, float | None]]:
    """(sweep id, store mtime) of every sweep marker: one LIST."""
    return [(e.name[: -len(".json")], e.mtime) for e in io.entries(SWEEPS) if visible(e.name)]


def read_sweep(io: StoreIO, sweep_id: str, mtime: float | None = None) -> Sweep:
    key = sweep_key(sweep_id)
    try:
        obj = parse_document(io.read(key, "a sweep marker"), io.url_of(key), "sweep marker")
        return Sweep(
            sweep_id,
            str(obj["state"]),
            frozenset(str(d) for d in obj["blobs"]),
            frozenset(str(e) for e in obj["envs"]),
            float(obj["limit"]),
            parse_iso(obj.get("deadline")),
            mtime,
        )
    except NotFound:
        return Sweep(sweep_id, GONE, mtime=mtime)
    except (Refused, ManifestError, ValueError, KeyError, TypeError):
        # Unreadable: assume the worst (it may delete anything) for as long as it could.
        return Sweep(sweep_id, DELETING, limit=Timing().sweep_limit, mtime=mtime)


def write_sweep(io: StoreIO, sweep: Sweep) -> None:
    io.write(sweep_key(sweep.sweep_id), sweep.to_json(), f"sweep marker ({sweep.state})")


def remove_sweep(io: StoreIO, sweep_id: str) -> None:
    io.remove(sweep_key(sweep_id), "a sweep marker")
