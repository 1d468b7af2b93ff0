"""Shared helpers for the benchmarks: work directory, timed commands, medians, results table."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "BenchError",
    "Figure",
    "Results",
    "dir_bytes",
    "fresh_dir",
    "median_time",
    "run",
    "sha256_file",
    "timed",
    "uv_bin",
    "work_dir",
]


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which command and shows its output."""


def work_dir() -> Path:
    """Where reference venvs, anchors and scratch files live (cached across runs)."""
    root = os.environ.get("ENVSHIP_BENCH_DIR") or str(Path.home() / ".cache" / "envship-bench")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def uv_bin() -> str:
    """uv next to the running interpreter (the dev venv), else from PATH."""
    here = Path(sys.executable).parent / "uv"
    if here.exists():
        return str(here)
    found = shutil.which("uv")
    if not found:
        raise BenchError("uv not found: install it (`pip install uv`) or run from the dev venv")
    return found


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run *cmd*; raise BenchError with its output when it fails."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, env=full_env, cwd=cwd, input=stdin
    )
    if proc.returncode != 0:
        raise BenchError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def timed(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> float:
    """Wall-clock seconds of one run of *cmd* (fails loudly)."""
    start = time.perf_counter()
    run(cmd, env=env, cwd=cwd)
    return time.perf_counter() - start


def median_time(
    step: Callable[[], float | None], runs: int, setup: Callable[[], None] | None = None
) -> list[float]:
    """Run *setup* (untimed) then *step* `runs` times; *step* returns its own time or None."""
    samples: list[float] = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        own = step()
        samples.append(own if own is not None else time.perf_counter() - start)
    return samples


def fresh_dir(path: Path) -> Path:
    """Remove *path* if it exists and create it empty."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def dir_bytes(path: Path) -> int:
    """Total size of the regular files under *path* (0 if it does not exist)."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Figure:
    """One measured figure: a step, a tool, a value (median of samples when timed)."""

    step: str
    tool: str
    value: float | str | bool | None
    unit: str
    samples: tuple[float, ...] = ()
    note: str = ""


@dataclass
class Results:
    """All figures of one benchmark run, plus context (machine, versions, env sizes)."""

    context: dict[str, object] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)

    def add_time(self, step: str, tool: str, samples: Sequence[float], note: str = "") -> float:
        value = statistics.median(samples)
        self.figures.append(Figure(step, tool, round(value, 4), "s", tuple(
            round(s, 4) for s in samples), note))
        return value

    def add(self, step: str, tool: str, value: float | str | bool | None, unit: str,
            note: str = "") -> None:
        self.figures.append(Figure(step, tool, value, unit, (), note))

    def get(self, step: str, tool: str) -> Figure | None:
        for fig in reversed(self.figures):
            if fig.step == step and fig.tool == tool:
                return fig
        return None

    def to_json(self) -> str:
        return json.dumps(
            {"context": self.context, "figures": [asdict(f) for f in self.figures]},
            indent=1,
            sort_keys=True,
        )
