"""The `envship` command line: parses, calls the library, prints. No logic lives here."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console

from ..errors import EnvshipError

__all__ = [
    "AsJson", "app", "run", "console", "err_console", "human_size", "packed_line", "short_id",
    "show_progress", "state",
]

app = typer.Typer(
    name="envship",
    help="Ship a Python environment and its code to a cluster as content-addressed layers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
# Messages are never hard-wrapped: a path or env id split over two lines cannot be pasted.
err_console = Console(stderr=True, soft_wrap=True)


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


def short_id(text: str, length: int = 16) -> str:
    """An id shortened for people at a terminal; whole in pipes and logs (scripts use it)."""
    return text[:length] if console.is_terminal else text


def show_progress() -> bool:
    """Progress bars only on a terminal: in logs they are noise (and a stray blank line)."""
    return err_console.is_terminal


def packed_line(prefix: str | None, implementation: str, version: str, reason: str) -> str:
    """The stderr line naming the env that was packed: path, Python, why that one."""
    python = "Python" if implementation.lower() == "cpython" else implementation
    return f"packed env {prefix} ({python} {version}, from {reason})"


@app.callback()
def _main(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show progress details and tracebacks."
    ),
) -> None:
    state.verbose = verbose
    if not console.is_terminal:  # a pipe or a log: whole lines, whatever their length
        console.soft_wrap = True
        console.width = 10_000
    # Library warnings (a store being retried, a file left out) are for the user: one plain
    # "warning: …" line; -v adds levels and logger names for the curious.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s" if verbose else "warning: %(message)s",
        stream=sys.stderr,
    )


def _register() -> None:
    # Each area registers its own commands; importing the module is enough.
    from . import engine_cmds, node_cmds, pack_cmds, spark_cmds, store_cmds  # noqa: F401


class _Terminated(BaseException):
    """SIGTERM (or SIGHUP) as an exception, so the library's cleanup runs as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame: object) -> None:
    raise _Terminated(signum)


def run() -> None:
    """Run the CLI; an EnvshipError becomes a short red message and exit code 1."""
    import signal

    _register()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        code = app(standalone_mode=False)
    except _Terminated as exc:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        err_console.print(f"[red]terminated ({signal.Signals(exc.signum).name})[/]")
        sys.exit(128 + exc.signum)
    except EnvshipError as exc:
        if state.verbose:
            err_console.print_exception()
        from rich.markup import escape  # messages hold brackets: "pip install envship[s3]"

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[red]aborted[/]")
        sys.exit(130)
    except Exception as exc:
        # Usage errors: typer may bundle its own copy of click, so match the class by name.
        if any(cls.__name__ == "ClickException" for cls in type(exc).__mro__):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise
    # In non-standalone mode click returns the code of a `typer.Exit(code)` instead of exiting.
    sys.exit(code if isinstance(code, int) else 0)
