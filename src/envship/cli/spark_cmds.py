"""CLI commands: spark-submit."""

from __future__ import annotations

import shlex
import sys
from typing import Annotated

import typer

from .app import app, default_signals, err_console, state

__all__: list[str] = []

_HELP = """Run spark-submit with the executors' Python inside the env ENV_URI.

envship spark-submit ENV_URI --mode MODE ...spark-submit options... app.py ...app args...

Every spark-submit option passes through. envship's own options (below) may come \
before or after ENV_URI, but before the application.
"""


@app.command(
    "spark-submit",
    help=_HELP,
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
    },
)
def spark_submit(
    ctx: typer.Context,
    env_uri: Annotated[
        str, typer.Argument(metavar="ENV_URI", help="Env URI from `envship ship`, or a .pex.")
    ],
    mode: Annotated[
        str,
        typer.Option("--mode", metavar="MODE",
                     help="archives, node-cache or pex (implied by a .pex)."),
    ] = "archives",
    cache: Annotated[
        str | None,
        typer.Option("--cache", metavar="DIR",
                     help="node-cache mode: the node cache on executors (as `envship exec "
                          "--cache`)."),
    ] = None,
    cache_dir: Annotated[
        str | None, typer.Option("--cache-dir", hidden=True, help="Old name of --cache.")
    ] = None,
    presign: Annotated[
        bool | None,
        typer.Option("--presign/--no-presign", help="Hand executors presigned HTTPS URLs."),
    ] = None,
    expires: Annotated[
        int, typer.Option("--expires", metavar="SECONDS", help="Presigned URL lifetime.")
    ] = 21600,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not compare the local code with the env.")
    ] = False,
    driver_python: Annotated[
        str | None,
        typer.Option("--driver-python", metavar="PATH",
                     help="Driver Python (default: this one)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the spark-submit command, do not run it.")
    ] = False,
    no_local_modules: Annotated[
        bool,
        typer.Option("--no-local-modules", help="Do not ship the .py files next to the app."),
    ] = False,
    storage_option: Annotated[
        list[str] | None,
        typer.Option("--storage-option", "-s", metavar="KEY=VALUE",
                     help="fsspec storage option (repeatable), as for `envship ship`."),
    ] = None,
    show_signatures: Annotated[
        bool,
        typer.Option("--show-signatures",
                     help="Show presigned URLs whole in --dry-run and -v output (redacted by "
                          "default)."),
    ] = False,
) -> None:
    from ..engines.spark.submit import SubmitOptions, plan_submit, run_command

    given = SubmitOptions(
        mode, cache if cache is not None else cache_dir, presign, expires, not no_check,
        driver_python, dry_run, not no_local_modules, tuple(storage_option or ()),
    )
    cmd, options = plan_submit(env_uri, ctx.args, given)
    shown = shlex.join(cmd)
    if not show_signatures:  # presigned URLs are credentials for as long as they are valid
        from ..store.fs import redact_signed_urls

        shown = redact_signed_urls(shown)
    if options.dry_run:
        print(shown)
        return
    if state.verbose:
        err_console.print(f"[dim]$ {shown}[/]", highlight=False, markup=True, soft_wrap=True)
    default_signals()  # a SIGTERM goes on ending envship as it always did
    # sys.exit, not typer.Exit: the shell runs click with standalone_mode=False, where an
    # Exit's code would be returned and dropped.
    sys.exit(run_command(cmd))
