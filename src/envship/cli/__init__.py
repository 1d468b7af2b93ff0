"""The `envship` command line: parses, calls the library, prints. No logic lives here."""

from __future__ import annotations

import sys

import typer

from ..errors import EnvshipError
from .app import (
    AsJson,
    app,
    console,
    default_signals,
    err_console,
    error_console,
    human_size,
    state,
)
from .style import command

__all__ = ["AsJson", "app", "console", "err_console", "human_size", "run", "state"]


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
        code = command().main(prog_name="envship", standalone_mode=False)
    except _Terminated as exc:
        default_signals()
        error_console.print(f"[red]terminated ({signal.Signals(exc.signum).name})[/]")
        sys.exit(128 + exc.signum)
    except EnvshipError as exc:
        if state.verbose:
            error_console.print_exception()
        from rich.markup import escape  # messages hold brackets: "pip install envship[s3]"

        error_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(state.error_exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        error_console.print("[red]aborted[/]")
        sys.exit(130)
    except Exception as exc:
        # Usage errors: typer may bundle its own copy of click, so match the class by name.
        if any(cls.__name__ == "ClickException" for cls in type(exc).__mro__):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise
    # In non-standalone mode click returns the code of a `typer.Exit(code)` instead of exiting.
    sys.exit(code if isinstance(code, int) else 0)
