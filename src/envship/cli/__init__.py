"""The `envship` command line: parses, calls the library, prints. No logic lives here."""

from __future__ import annotations

import sys

import typer

from ..errors import EnvshipError
from .app import AsJson, app, console, err_console, human_size, state

__all__ = ["AsJson", "app", "run", "console", "err_console", "human_size", "state"]

def _register() -> None:
    # Each area registers its own commands; importing the module is enough.
    from . import engine_cmds, node_cmds, pack_cmds, spark_cmds, store_cmds  # noqa: F401


def run() -> None:
    """Run the CLI; an EnvshipError becomes a short red message and exit code 1."""
    _register()
    try:
        code = app(standalone_mode=False)
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
