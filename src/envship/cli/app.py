"""Shared pieces of the `envship` command line: the typer app, consoles, output helpers,
the global -v/-q/--version options."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "AsJson", "STORE_DEFAULT_HELP", "app", "console", "default_signals", "err_console",
    "error_console", "human_size", "note", "packed_line", "short_id", "show_progress", "state",
    "utc_iso", "utc_stamp", "configure", "plural",
]

app = typer.Typer(
    name="envship",
    help="Ship a Python environment and its code to a cluster as content-addressed layers.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class LazyConsole:
    """A rich Console made on first use, with the settings given until then: importing rich
    costs ~30 ms, which a command printing JSON or plain lines never needs."""

    def __init__(self, **options: Any) -> None:
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_made", None)
        object.__setattr__(self, "_wide_in_pipes", False)

    @property
    def made(self) -> bool:
        return self._made is not None

    @property
    def real(self) -> Console:
        """The Console itself (for rich objects that take one, such as progress bars)."""
        if self._made is None:
            from rich.console import Console

            made = Console(**self._options)
            if self._wide_in_pipes and not made.is_terminal:
                # a pipe or a log: whole lines, whatever their length
                made.soft_wrap = True
                made.width = 10_000
            object.__setattr__(self, "_made", made)
        return self._made  # type: ignore[no-any-return]

    def wide_in_pipes(self) -> None:
        """Once made, never wrap lines when not printing to a terminal."""
        object.__setattr__(self, "_wide_in_pipes", True)
        if self._made is not None and not self._made.is_terminal:
            self._made.soft_wrap = True
            self._made.width = 10_000

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._made is None and name == "quiet":  # a setting, not a reason to make it
            self._options[name] = value
        else:
            setattr(self.real, name, value)


console = LazyConsole()
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
# Messages are never hard-wrapped: a path or env id split over two lines cannot be pasted.
err_console = LazyConsole(stderr=True, soft_wrap=True)
error_console = LazyConsole(stderr=True, soft_wrap=True)  # errors: shown even with --quiet
# Where no URL is given: the store of `paths.default_store_url`.
STORE_DEFAULT_HELP = "default: $ENVSHIP_STORE, else $ENVSHIP_HOME/store"
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


def plural(n: int, word: str) -> str:
    """``1 layer``, ``2 layers``, ``0 layers``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def short_id(text: str, length: int = 16) -> str:
    """An id shortened for people at a terminal; whole in pipes and logs (scripts use it)."""
    return text[:length] if console.is_terminal else text


def show_progress() -> bool:
    """Progress bars only on a terminal: in logs they are noise (and a stray blank line)."""
    if not (sys.stderr.isatty() or "FORCE_COLOR" in os.environ
            or "TTY_COMPATIBLE" in os.environ):
        return False  # what rich would decide, without importing it
    return bool(err_console.is_terminal and not err_console.quiet)


def note(text: str) -> None:
    """One plain line for people on stderr (none with --quiet), as it is: no markup."""
    if not (state.quiet and not state.verbose):
        print(text, file=sys.stderr)


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
    console.wide_in_pipes()
    # Library warnings (a store being retried, a file left out) are for the user: one plain
    # "warning: …" line; -v adds levels and logger names for the curious.
    level = logging.INFO if state.verbose else logging.ERROR if state.quiet else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    if state.verbose:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_OneLine())
    logging.basicConfig(level=level, handlers=[handler], force=True)


class _OneLine(logging.Formatter):
    """``warning: <message>`` on one line: a library's traceback (gcsfs logs one with each
    retry it gives up) is for -v, not a wall in front of envship's own error line."""

    def format(self, record: logging.LogRecord) -> str:
        return "warning: " + " ".join(record.getMessage().split("\n"))


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
