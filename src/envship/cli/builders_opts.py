"""Options shared by `envship pack` and `envship ship` to build an env from a lock file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["Requirements", "PythonVersion", "Platform", "Strict", "Code", "Format", "lock_opts"]

Requirements = Annotated[
    Path | None,
    typer.Option("--requirements", "-r",
                 help="Build from a lock instead of a local env: requirements.txt (pinned), "
                      "pylock.toml or uv.lock."),
]
PythonVersion = Annotated[
    str | None,
    typer.Option("--python-version", help="Target Python for --requirements, 3.X (default: "
                                          "this one)."),
]
Platform = Annotated[
    str | None,
    typer.Option("--platform", help="Target platform tag for --requirements, e.g. "
                                    "manylinux_2_28_x86_64 / manylinux_2_28_aarch64."),
]
Strict = Annotated[
    bool,
    typer.Option("--strict", help="With --requirements: unpinned or incomplete requirements "
                                  "are an error, not a warning."),
]
Code = Annotated[
    Path | None,
    typer.Option("--code", help="With --requirements: project whose code becomes the code "
                                "layer (default: the pyproject.toml in the current directory)."),
]
Format = Annotated[
    str,
    typer.Option("--format", help="With --requirements: layers, pex (one PEX file) or both."),
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
