"""The publish / gc protocol of docs/store.md: leases (a publisher's pending references),
sweep markers (a gc's announced deletions) and a publisher's claim built of both.

A publisher announces what it is about to reference and then looks for sweeps; a gc announces
what it is about to delete, waits, and then looks at leases and manifests again. Whichever
side writes second sees the other, so no interleaving loses a blob.
"""

from __future__ import annotations

from .leases import Lease, LeaseInfo, drop_lease, list_leases, take_lease
from .sweeps import (
    DELETING,
    DONE,
    GONE,
    MARKED,
    Sweep,
    new_sweep_id,
    read_sweep,
    remove_sweep,
    sweep_names,
    write_sweep,
)
from .timing import DEFAULT_GRACE, Step, Timing, no_step, wall_iso

__all__ = [
    "DEFAULT_GRACE", "Timing", "Step", "no_step", "wall_iso",
    "Lease", "LeaseInfo", "take_lease", "drop_lease", "list_leases",
    "MARKED", "DELETING", "DONE", "GONE", "Sweep", "new_sweep_id", "sweep_names", "read_sweep",
    "write_sweep", "remove_sweep",
]
