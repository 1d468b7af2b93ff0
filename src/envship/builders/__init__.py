"""Build envs from lock files (uv, any target platform), PEX files and conda prefixes."""

from __future__ import annotations

from .lock import PinnedSet, read_lock
from .lockpack import pack_lock, stage_lock
from .target import Target, resolve_target
from .uvtool import BuildError

__all__ = ["BuildError", "PinnedSet", "Target", "pack_lock", "read_lock", "resolve_target",
           "stage_lock"]
