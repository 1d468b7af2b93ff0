"""Shared helpers for the benchmarks: work directory, timed commands, medians, results table."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BenchError",
    "CountingStore",
    "Figure",
    "Results",
    "bench_context",
    "dir_bytes",
    "fresh_dir",
    "median_time",
    "run",
    "sha256_file",
    "timed",
    "uv_bin",
    "work_dir",
    "write_results",
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


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a store directory and adds every body it sends to its server's counters."""

    def copyfile(self, source: Any, outputfile: Any) -> None:
        counter: CountingStore = self.server.counter  # type: ignore[attr-defined]
        kind = "blobs" if "/blobs/" in self.path else "other"
        sent = 0
        while chunk := source.read(1 << 20):
            outputfile.write(chunk)
            sent += len(chunk)
        with counter.lock:
            counter.counts[kind] = counter.counts.get(kind, 0) + sent
            counter.counts[kind + "_requests"] = counter.counts.get(kind + "_requests", 0) + 1
            path = self.path.split("?", 1)[0]
            counter.by_path[path] = counter.by_path.get(path, 0) + sent

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CountingStore:
    """A store directory served over HTTP on 127.0.0.1 that counts the bytes of every body sent:
    `counts["blobs"]` / `counts["other"]` (and `*_requests`), `by_path[url path]`.

    A byte-counting twin of tests/kits/nodekit.py::CountingServer (which counts GETs only)."""

    def __init__(self, directory: Path) -> None:
        self.counts: dict[str, int] = {}
        self.by_path: dict[str, int] = {}
        self.lock = threading.Lock()
        handler = functools.partial(_CountingHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.counter = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> CountingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def git_commit() -> str:
    """The short commit id of this checkout, or '?' outside git."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def bench_context(name: str) -> dict[str, Any]:
    """Context every standalone benchmark records: name, start time, machine, load, commit."""
    import platform

    started = dt.datetime.now(dt.timezone.utc)
    return {"benchmark": name, "started": started.isoformat(timespec="seconds"),
            "stamp": f"{started:%Y%m%dT%H%M%SZ}", "cpus": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg(), "envship_commit": git_commit(),
            "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE")}


def write_results(name: str, results: Results, table: str) -> Path:
    """benchmarks/results/<name>-<UTC>.json (+ .md with *table*); records the final load."""
    results.context["loadavg_end"] = os.getloadavg()
    now = dt.datetime.now(dt.timezone.utc)
    stamp = str(results.context.get("stamp") or f"{now:%Y%m%dT%H%M%SZ}")
    out = Path(__file__).parent / "results" / f"{name}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(results.to_json() + "\n")
    tmp.replace(out)
    out.with_suffix(".md").write_text(table)
    return out


def finish(name: str, results: Results, table: str) -> int:
    """Write the results (see :func:`write_results`), print the table and where they went."""
    out = write_results(name, results, table)
    print(table)
    print(f"results: {out}")
    return 0

