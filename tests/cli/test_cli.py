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


def test_each_command_is_built_alone_from_the_module_that_registers_it() -> None:
    """`envship NAME` builds only NAME's click command: the map of which module registers
    which command must match the registrations, and the lone command must read and parse
    exactly as in the whole tree."""
    code = r"""
import json, sys
from envship.cli import COMMAND_MODULES, _register, invoked_command
from envship.cli.app import app
from envship.cli.style import command, command_name
_register()
names = sorted({command_name(c) for c in app.registered_commands}
               | {g.name for g in app.registered_groups})
full = command()
alone = {}
for name in names:
    sub = command(name)
    alone[name] = [sorted(sub.commands),
                   [p.name for p in sub.commands[name].params] ==
                   [p.name for p in full.commands[name].params]]
print(json.dumps({"names": names, "map": sorted(COMMAND_MODULES), "alone": alone,
                  "picked": [invoked_command(a) for a in (["-v", "-q", "pack", "-o", "x"],
                             ["--help"], ["--version"], ["pak"], [], ["store", "ls"])]}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    import json

    got = json.loads(proc.stdout)
    assert got["names"] == got["map"]
    assert got["alone"] == {name: [[name], True] for name in got["names"]}
    assert got["picked"] == ["pack", None, None, None, None, "store"]


def test_a_command_run_alone_still_offers_the_whole_tree_for_typos() -> None:
    proc = _run("pak")
    assert proc.returncode == 2
    assert "No such command 'pak'" in proc.stderr
    sub = _run("-v", "store", "ls", "--help")
    assert sub.returncode == 0 and "Usage: envship store ls" in sub.stdout
