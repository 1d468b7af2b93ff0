"""Lock files as a source: read a lock (requirements.txt, pylock.toml, uv.lock), resolve it for a
target Python and platform with uv, stage the install, and describe it as a Snapshot."""

from __future__ import annotations

from .lockfile import PinnedSet, read_lock
from .stage import lock_snapshot, stage_lock
from .target import Target, resolve_target
from .uvtool import BuildError

__all__ = ["BuildError", "PinnedSet", "Target", "lock_snapshot", "read_lock", "resolve_target",
           "stage_lock"]
