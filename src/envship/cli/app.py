"""Shared pieces of the `envship` command line: the typer app, consoles, common options."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["AsJson", "app", "console", "err_console", "human_size", "state"]

app = typer.Typer(
    name="envship",
    help="Ship a Python environment and its code to a cluster as content-addressed layers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
err_console = Console(stderr=True)


class _State:
    verbose: bool = False


state = _State()


def human_size(n: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@app.callback()
def _main(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show progress details and tracebacks."
    ),
) -> None:
    state.verbose = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
