"""Hostile store objects (FIFO, /dev/zero, a huge sparse tag, nested JSON) give one line,
with bounded memory, from the CLI, the library and the single-file node runtime alike."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kits.nodekit import ENVSHIP, node_env

HEX = {c: c * 64 for c in "abcd"}
MEMORY_CAP = 2 << 30  # address space per process: reading /dev/zero or the sparse tag fails it


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[dict[str, Path]]:
    store = tmp_path / "store"
    (store / "envs").mkdir(parents=True)
    (store / "tags").mkdir()
    (store / "blobs" / "sha256").mkdir(parents=True)
    objs = {
        "device": store / "envs" / f"{HEX['a']}.json",  # a manifest symlinked to /dev/zero
        "fifo": store / "envs" / f"{HEX['b']}.json",
        "nested": store / "envs" / f"{HEX['c']}.json",
        "sparse": store / "tags" / "big.json",  # 20 GB, all holes
    }
    objs["device"].symlink_to("/dev/zero")
    os.mkfifo(objs["fifo"])
    objs["nested"].write_text("[" * 200_000 + "]" * 200_000)
    with open(objs["sparse"], "wb") as f:
        f.truncate(20 << 30)
    objs["store"] = store
    yield objs


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run *args* with at most MEMORY_CAP of address space: an unbounded read dies of it."""
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=node_env(),
                          preexec_fn=_cap)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("what", ["device", "fifo", "nested", "sparse"])
def test_inspect_and_exec_refuse_in_one_line(
    hostile: dict[str, Path], tmp_path: Path, what: str
) -> None:
    ref = str(hostile[what])
    script = tmp_path / "envship_node.py"
    subprocess.run([ENVSHIP, "node-script", "-o", str(script)], check=True)
    for args in (
        [ENVSHIP, "inspect", ref],
        [ENVSHIP, "exec", "--cache", str(tmp_path / "c"), ref, "--", "true"],
        [sys.executable, str(script), "--cache", str(tmp_path / "c"), ref, "--", "true"],
    ):
        line = _one_line(_run(args))
        expect = {"device": "not a regular file", "fifo": "not a regular file",
                  "nested": "nested too deeply", "sparse": "21474836480 bytes"}[what]
        assert expect in line, (args, line)


def test_inspect_dev_zero_and_store_commands(hostile: dict[str, Path]) -> None:
    assert "/dev/zero" in _one_line(_run([ENVSHIP, "inspect", "/dev/zero"]))
    proc = _run([ENVSHIP, "store", "verify", str(hostile["store"])])
    damage = [line for line in proc.stdout.splitlines() if line.startswith("DAMAGE")]
    assert len(damage) == 4, proc.stdout + proc.stderr  # reported, not fatal
    proc = _run([ENVSHIP, "store", "ls", str(hostile["store"])])
    assert "Traceback" not in proc.stderr and proc.stderr.count("damaged") == 3, proc.stderr


def test_library_reads_are_bounded(hostile: dict[str, Path]) -> None:
    from envship import Env
    from envship.errors import EnvshipError

    for what in ("device", "fifo", "nested", "sparse"):
        with pytest.raises(EnvshipError) as err:
            Env.open(str(hostile[what]))
        assert "\n" not in str(err.value)
