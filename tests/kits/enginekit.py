"""Helpers for the engine tests: ship a venv, free ports, client venvs without user packages."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kits.support import make_venv

REPO = Path(__file__).resolve().parents[2]  # the envship checkout, installed editable below
RAY = "ray==2.60.0"  # drivers and envs must run the same Ray


@dataclass(frozen=True)
class Shipped:
    """A venv shipped to a store: its env URI, env id and the venv it came from."""

    uri: str
    env_id: str
    venv_python: Path
    store: Path


@dataclass(frozen=True)
class PackedConda:
    """A conda env packed into a local store, its prefix gone (moved away)."""

    uri: str
    env_id: str
    store: Path
    result: Any  # envship.packing.pipeline.PackResult: manifest + blob paths, to publish
    gone: Path  # where the prefix was


def ship_venv(python: Path, store: Path, *, with_python: bool = False) -> Shipped:
    from envship.shipping import ship

    env = ship(str(store), python=str(python), with_python=with_python)
    return Shipped(env.uri, env.env_id, python, store)


def version_of(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_venv(path: Path, packages: list[str]) -> Path:
    """A venv with *packages* and envship (editable), but none of the env's user packages."""
    return make_venv(path, packages, [REPO])


def child_environ(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environ.update(extra)
    return environ


def run_workers(
    workers: Sequence[tuple[list[str], dict[str, str]]], cwd: Path, timeout: float
) -> list[Any]:
    """Start every worker ``(argv, environ)`` at once (they wait for each other), wait for all,
    and return the JSON line each printed last; any left over is killed (SIGKILL: a worker
    waiting for its peer may ignore SIGTERM)."""
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=environ, cwd=cwd)
        for argv, environ in workers
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err[-6000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


def local_path(url: str) -> Path:
    """The path of a ``file://`` resource URL of a YARN spec."""
    parts = urlsplit(url)
    assert parts.scheme == "file", url
    return Path(parts.path)


def yarn_localize(files: Mapping[str, Mapping[str, object]], container: Path) -> None:
    """What YARN's localizer does: copy FILE resources, unpack ARCHIVE ones under their name."""
    container.mkdir()
    for name, res in files.items():
        src = local_path(str(res["source"]))
        if res["type"] == "ARCHIVE":
            with tarfile.open(src) as tar:
                tar.extractall(container / name, filter="tar")
        else:
            shutil.copy(src, container / name)


# Source for driver scripts (stdlib only): hold a node cache's lock as a pruner would, so the
# processes an engine starts wait while they prepare the env, and collect the command lines
# — what every user of a node can read — of this process's descendants that run the node
# runtime then; let go once *want* of them are seen.
WATCH_PREPARING = '''
import fcntl as _fcntl, os as _os, threading as _threading, time as _time


def _descends_from_me(pid):
    me = _os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                pid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == me:
            return True
    return False


def watch_preparing(cache, want, timeout=180):
    _os.makedirs(_os.path.join(cache, "locks"), exist_ok=True)
    held = _os.open(_os.path.join(cache, "locks", "cache.lock"), _os.O_RDONLY | _os.O_CREAT)
    _fcntl.flock(held, _fcntl.LOCK_EX)
    seen = {}

    def scan():
        deadline = _time.monotonic() + timeout
        try:
            while len(seen) < want and _time.monotonic() < deadline:
                for name in _os.listdir("/proc"):
                    if not name.isdigit() or int(name) in seen:
                        continue
                    try:
                        with open(f"/proc/{name}/cmdline", "rb") as f:
                            line = f.read().replace(b"\\0", b" ").decode(errors="replace")
                    except OSError:
                        continue
                    runtime = "envship.node" in line or "envship_node.py" in line
                    if runtime and _descends_from_me(int(name)):
                        seen[int(name)] = line
                _time.sleep(0.05)
        finally:
            _os.close(held)

    thread = _threading.Thread(target=scan, daemon=True)
    thread.start()
    return thread, seen
'''
