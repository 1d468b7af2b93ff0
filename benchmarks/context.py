"""The state one benchmark run carries between its sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .common import Results
from .refenv import Anchors, RefEnv

__all__ = ["Ctx"]


@dataclass
class Ctx:
    """Reference env, anchors, scratch space, run counts and what earlier sections produced."""

    env: RefEnv
    anchors: Anchors
    scratch: Path
    runs: int  # runs of every timed step
    slow_runs: int  # runs of the very slow anchor steps (PEX builds with an empty cache)
    warm_runs: int  # runs of each warm start-up figure
    base_python: Path  # the interpreter a node has (the venv's base interpreter)
    results: Results
    artifacts: dict[str, Path] = field(default_factory=dict)  # produced files reused later
    env_ids: dict[str, str] = field(default_factory=dict)
