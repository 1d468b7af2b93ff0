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


# Which module registers each top-level command (a test checks it against the registrations).
COMMAND_MODULES: dict[str, str] = {
    "dask-worker": "engine_cmds",
    "exec": "node_cmds", "node-script": "node_cmds", "cache": "node_cmds",
    "pack": "pack_cmds", "inspect": "pack_cmds", "diff": "pack_cmds",
    "spark-submit": "spark_cmds",
    "ship": "store_cmds", "store": "store_cmds", "tag": "store_cmds", "gc": "store_cmds",
    "presign": "store_cmds",
}
_ROOT_FLAGS = frozenset({"-v", "--verbose", "-q", "--quiet"})


def _register(name: str | None = None) -> None:
    """Import the module that registers command *name* (every module when None)."""
    import importlib

    modules = [COMMAND_MODULES[name]] if name else sorted(set(COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(f"{__name__}.{module}")


def invoked_command(args: list[str]) -> str | None:
    """The top-level command *args* run (``["-v", "pack", ...]`` -> ``"pack"``); None for
    help, --version, no command or an unknown name: those need the whole command tree."""
    for arg in args:
        if arg not in _ROOT_FLAGS:
            return arg if arg in COMMAND_MODULES else None
    return None


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

    # Building the click tree costs ~3 ms per command: build only the one that runs.
    name = invoked_command(sys.argv[1:])
    _register(name)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        code = command(name).main(prog_name="envship", standalone_mode=False)
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
