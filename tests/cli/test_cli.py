"""The CLI shell: usage errors and envship errors are short messages with non-zero exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ENVSHIP = str(Path(sys.executable).parent / "envship")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENVSHIP, *args], capture_output=True, text=True, timeout=120)


def test_unknown_option_is_a_usage_error_without_traceback() -> None:
    proc = _run("pack", "--bogus")
    assert proc.returncode == 2
    assert "No such option: --bogus" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_envship_error_is_one_line_and_exit_1() -> None:
    proc = _run("inspect", "/nonexistent/envs/manifest.json")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:")
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2


def test_help_lists_every_command() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    for command in ("pack", "ship", "exec", "spark-submit", "cache", "store", "dask-worker"):
        assert command in proc.stdout
