"""Shared pieces of the `envship` command line: the typer app, consoles, output helpers,
the global -v/-q/--version options."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from typing import Annotated

import typer
from rich.console import Console

__all__ = [
    "AsJson", "STORE_DEFAULT_HELP", "app", "console", "default_signals", "err_console",
    "error_console", "human_size", "packed_line", "short_id", "show_progress", "state",
    "utc_iso", "utc_stamp", "configure", "PASS_THROUGH",
]

app = typer.Typer(
    name="envship",
    help="Ship a Python environment and its code to a cluster as content-addressed layers.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
# Messages are never hard-wrapped: a path or env id split over two lines cannot be pasted.
err_console = Console(stderr=True, soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)  # errors: shown even with --quiet
# Where no URL is given: the store of `paths.default_store_url`.
STORE_DEFAULT_HELP = "default: $ENVSHIP_STORE, else $ENVSHIP_HOME/store"
# Commands whose options after their arguments belong to the program they wrap
# (`spark-submit -v` is spark-submit's --verbose): -v/-q go before the command name there.
PASS_THROUGH = frozenset({"exec", "spark-submit", "dask-worker"})


class _State:
    verbose: bool = False
    quiet: bool = False
    error_exit_code: int = 1  # `diff` makes it 2, as diff(1) does: 1 means "they differ"


state = _State()


def human_size(n: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def short_id(text: str, length: int = 16) -> str:
    """An id shortened for people at a terminal; whole in pipes and logs (scripts use it)."""
    return text[:length] if console.is_terminal else text


def show_progress() -> bool:
    """Progress bars only on a terminal: in logs they are noise (and a stray blank line)."""
    return err_console.is_terminal and not err_console.quiet


def utc_stamp(seconds: float | None) -> str:
    """A time for people, in every table: ``2026-05-04 12:30`` (UTC)."""
    if seconds is None:
        return "-"
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def utc_iso(seconds: float | None) -> str | None:
    """A time in JSON, in every command: ``2026-05-04T12:30:00Z`` (as in provenance files)."""
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def packed_line(prefix: str | None, implementation: str, version: str, reason: str) -> str:
    """The stderr line naming the env that was packed: path, Python, why that one."""
    python = "Python" if implementation.lower() == "cpython" else implementation
    return f"packed env {prefix} ({python} {version}, from {reason})"


def configure(verbose: bool | None = None, quiet: bool | None = None) -> None:
    """Apply -v/-q (given before or after the command name) to output and logging."""
    if verbose is not None:
        state.verbose = state.verbose or verbose
    if quiet is not None:
        state.quiet = state.quiet or quiet
    err_console.quiet = state.quiet and not state.verbose
    if not console.is_terminal:  # a pipe or a log: whole lines, whatever their length
        console.soft_wrap = True
        console.width = 10_000
    # Library warnings (a store being retried, a file left out) are for the user: one plain
    # "warning: …" line; -v adds levels and logger names for the curious.
    level = logging.INFO if state.verbose else logging.ERROR if state.quiet else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(levelname)s %(name)s: %(message)s" if state.verbose else "warning: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        print(f"envship {version('envship')}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show progress details and, on errors, the traceback."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only results and errors (no progress or notes)."
    ),
    version: bool = typer.Option(
        False, "--version", help="Print envship's version and exit.", is_eager=True,
        callback=_version,
    ),
) -> None:
    configure(verbose, quiet)


def default_signals() -> None:
    """SIGTERM/SIGHUP as before envship started: for commands that only wait for a child
    (spark-submit), whose own handling of the signal is what counts."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
