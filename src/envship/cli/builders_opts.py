"""Options shared by `envship pack` and `envship ship`: which env, what to leave out, and how
to build an env from a lock file instead."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "EnvPython", "WithPython", "Exclude", "Only", "Include",
    "Requirements", "PythonVersion", "Platform", "Strict", "Code", "Format", "lock_opts",
]

EnvPython = Annotated[
    str | None,
    typer.Option("--python", "-p", metavar="PATH",
                 help="Venv dir, prefix or interpreter of the env to pack (default: "
                      "$VIRTUAL_ENV, else a .venv in this directory or a parent, else the "
                      "Python running envship)."),
]
WithPython = Annotated[
    bool, typer.Option("--with-python", help="Add a layer with the base interpreter.")
]
Exclude = Annotated[
    list[str] | None,
    typer.Option("--exclude", "-x", metavar="DIST",
                 help="Leave this distribution out (repeatable)."),
]
Only = Annotated[
    list[str] | None,
    typer.Option("--only", metavar="DIST", help="Pack only these distributions (repeatable)."),
]
Include = Annotated[
    list[str] | None,
    typer.Option("--include", metavar="DIST",
                 help="Keep a distribution left out by default, e.g. pyspark (repeatable)."),
]

Requirements = Annotated[
    Path | None,
    typer.Option("--requirements", "-r", metavar="FILE",
                 help="Build from a lock instead of a local env: requirements.txt (pinned), "
                      "pylock.toml or uv.lock."),
]
PythonVersion = Annotated[
    str | None,
    typer.Option("--python-version", metavar="3.X",
                 help="Target Python for --requirements (default: this one)."),
]
Platform = Annotated[
    str | None,
    typer.Option("--platform", metavar="TAG", help="Target platform tag for --requirements, e.g. "
                                    "manylinux_2_28_x86_64 / manylinux_2_28_aarch64."),
]
Strict = Annotated[
    bool,
    typer.Option("--strict", help="With --requirements: unpinned or incomplete requirements "
                                  "are an error, not a warning."),
]
Code = Annotated[
    Path | None,
    typer.Option("--code", metavar="DIR",
                 help="With --requirements: project whose code becomes the code layer "
                      "(default: the pyproject.toml in the current directory)."),
]
Format = Annotated[
    str,
    typer.Option("--format", metavar="FORMAT",
                 help="With --requirements: layers, pex (one PEX file) or both."),
]


def lock_opts(
    requirements: Path | None, python_version: str | None, platform: str | None,
    strict: bool, code: Path | None,
) -> dict[str, Any]:
    """The `pack()` keyword arguments for the lock options (empty when none was given)."""
    opts: dict[str, Any] = {}
    if requirements is not None:
        opts["requirements"] = requirements
    if python_version is not None:
        opts["python_version"] = python_version
    if platform is not None:
        opts["platform"] = platform
    if strict:
        opts["strict"] = True
    if code is not None:
        opts["code"] = code
    return opts
