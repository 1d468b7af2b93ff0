"""CLI commands: spark-submit."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, Optional

import typer

from ..spark import OWN_OPTIONS, plan_submit, run_command
from .app import app, default_signals, err_console, state

__all__: list[str] = []

_HELP = """Run spark-submit with the executors' Python inside the env ENV_URI.

envship spark-submit ENV_URI --mode MODE ...spark-submit options... app.py ...app args...

Every spark-submit option passes through. envship's own options (below) may come \
before or after ENV_URI, but before the application.
"""


def _with_own_options(func: Callable[..., None]) -> Callable[..., None]:
    """Give *func* a typer parameter per option of OWN_OPTIONS (declared once, there): click
    shows them in --help and parses those before ENV_URI; the library parses the rest."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [
        inspect.Parameter("ctx", kind, annotation=typer.Context),
        inspect.Parameter("env_uri", kind, annotation=str, default=typer.Argument(
            ..., metavar="ENV_URI", help="Env URI from `envship ship`, a tag URI, or a .pex.")),
    ]
    for i, opt in enumerate(OWN_OPTIONS):
        common: dict[str, Any] = {"help": opt.help, "hidden": opt.hidden}
        annotation: Any
        if opt.sets is not None:
            default, annotation = typer.Option(False, *opt.names, **common), bool
        elif opt.field == "storage_options":
            default = typer.Option(None, *opt.names, metavar=opt.metavar, **common)
            annotation = Optional[list[str]]  # noqa: UP045 (typer reads typing.Optional)
        else:
            default = typer.Option(None, *opt.names, metavar=opt.metavar, **common)
            annotation = Optional[str]  # noqa: UP045
        params.append(inspect.Parameter(f"own_{i}", kind, default=default, annotation=annotation))
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return func


def _own_argv(given: dict[str, Any]) -> list[str]:
    """The options click parsed before ENV_URI, back as argv (the library parses them all)."""
    argv: list[str] = []
    for i, opt in enumerate(OWN_OPTIONS):
        value = given.get(f"own_{i}")
        if value is True:
            argv.append(opt.names[0])
        elif isinstance(value, list):
            for item in value:
                argv += [opt.names[0], item]
        elif isinstance(value, str):
            argv += [opt.names[0], value]
    return argv


@app.command(
    "spark-submit",
    help=_HELP,
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
    },
)
@_with_own_options
def spark_submit(ctx: typer.Context, env_uri: str, **own: Any) -> None:
    cmd, options = plan_submit([*_own_argv(own), env_uri, *ctx.args])
    # presigned URLs are credentials while they are valid: redacted unless asked for
    shown = cmd.shown(show_signatures=options.show_signatures)
    if options.dry_run:
        print(shown)
        return
    if state.verbose:
        err_console.print(f"[dim]$ {shown}[/]", highlight=False, markup=True, soft_wrap=True)
    default_signals()  # a SIGTERM goes on ending envship as it always did
    # sys.exit, not typer.Exit: the shell runs click with standalone_mode=False, where an
    # Exit's code would be returned and dropped.
    sys.exit(run_command(cmd))
