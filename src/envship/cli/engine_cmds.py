"""CLI commands: engines (dask-worker)."""

from __future__ import annotations

import os
import shlex
import sys

import typer

from .app import app

__all__: list[str] = []


@app.command(
    "dask-worker",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def dask_worker(
    ctx: typer.Context,
    env_uri: str = typer.Argument(..., help="Env URI (<store>/envs/<env-id>.json) or tag URI."),
    scheduler: str = typer.Argument(..., help="Scheduler address, e.g. tcp://10.0.0.5:8786."),
    node_script: str = typer.Option(
        None, "--node-script", help="Start through this envship_node.py instead of envship."
    ),
    python: str = typer.Option(None, "--python", help="Interpreter that runs the node runtime."),
    print_only: bool = typer.Option(
        False, "--print", help="Print the command instead of running it."
    ),
) -> None:
    """Start a Dask worker inside the env; options after the scheduler go to `dask worker`."""
    from ..engines.dask import worker_command

    argv = worker_command(
        env_uri, scheduler, node_script_path=node_script, python=python, extra_args=ctx.args
    )
    if print_only:
        print(shlex.join(argv))
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)  # the worker replaces this process: signals reach it directly
