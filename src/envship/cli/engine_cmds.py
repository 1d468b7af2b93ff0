"""CLI commands: engines (dask-worker)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .app import app

__all__: list[str] = []


@app.command(
    "dask-worker",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def dask_worker(
    ctx: typer.Context,
    env_uri: Annotated[
        str,
        typer.Argument(metavar="ENV_URI",
                       help="Env URI (<store>/envs/<env-id>.json) or tag URI."),
    ],
    scheduler: Annotated[
        str,
        typer.Argument(metavar="SCHEDULER", help="Scheduler address, e.g. tcp://10.0.0.5:8786."),
    ],
    node_script: Annotated[
        str | None,
        typer.Option("--node-script", metavar="FILE",
                     help="Start through this envship_node.py instead of envship."),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option("--python", metavar="PATH", help="Interpreter that runs the node runtime."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the command instead of running it (as "
                                       "`spark-submit --dry-run`)."),
    ] = False,
    print_only: Annotated[
        bool, typer.Option("--print", hidden=True, help="Old name of --dry-run.")
    ] = False,
    show_signatures: Annotated[
        bool,
        typer.Option("--show-signatures",
                     help="Show presigned URLs whole in --dry-run output (redacted by default)."),
    ] = False,
) -> None:
    """Start a Dask worker inside the env; options after the scheduler go to `dask worker`."""
    from ..dask import worker_launch
    from ..errors import EngineError

    for given in (env_uri, scheduler):  # an option click did not know, taken as an argument
        if given.startswith("-") and given != "-":
            raise EngineError(f"{given}: not an option of envship dask-worker; `dask worker`'s "
                              "options go after ENV_URI SCHEDULER")

    how = worker_launch(
        env_uri, scheduler, node_script_path=node_script, python=python, extra_args=ctx.args
    )
    if dry_run or print_only:
        print(how.shown(show_signatures=show_signatures))
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # The worker replaces this process (signals reach it directly); the env reference goes
    # in its environment, not on its command line.
    os.execvpe(how.argv[0], how.argv, {**os.environ, **how.env_vars})
