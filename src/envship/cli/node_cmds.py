"""CLI commands: exec, node-script, cache ls, cache prune."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..node.errors import NodeError
from . import app, console, err_console, human_size, short_id, state

__all__: list[str] = []

cache_app = typer.Typer(help="Inspect and trim this node's env cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

_CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache", help="Node cache (default: $ENVSHIP_CACHE, else ~/.cache/envship)."),
]


@app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def exec_cmd(ctx: typer.Context) -> None:
    """Run a command inside an env: envship exec [-v] [--cache DIR] [--python PY] ENV -- CMD...

    Fetches and verifies the env's layers into the node cache if needed, then replaces this
    process by CMD (exit code and signals pass through). `envship exec --help` for details.
    """
    from ..node.__main__ import main as node_main

    args = list(ctx.args)
    if state.verbose and "-v" not in args:
        args.insert(0, "-v")
    sys.exit(node_main(args, prog="envship exec"))


@app.command("node-script")
def node_script(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="PATH",
                     help="Write to PATH (a file, or a directory to hold envship_node.py) "
                          "instead of stdout."),
    ] = None,
) -> None:
    """Print the single-file node runtime (stdlib only, Python >= 3.9).

    On a node without envship: python3 envship_node.py ENV_URI -- CMD...
    """
    from ..node.script import script_text, write_script

    if output is None:
        sys.stdout.write(script_text())
        return
    written = write_script(str(output))
    err_console.print(f"wrote {written}", highlight=False)


def _when(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@cache_app.command("ls")
def cache_ls(
    cache: _CacheOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List unpacked layers and env views with size, last use and whether a process uses them."""
    from ..node.cache import cache_root
    from ..node.prune import list_cache

    entries = list_cache(cache_root(str(cache) if cache else None))
    if as_json:
        print(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        console.print("the node cache is empty")
        return
    from rich.table import Table

    table = Table("kind", "id", "size", "last use", "in use")
    for e in entries:
        size = human_size(e.size) if e.kind == "layer" else f"{len(e.layers)} layers"
        table.add_row(e.kind, short_id(e.name), size, _when(e.last_use), "yes" if e.in_use else "")
    console.print(table)
    total = sum(e.size for e in entries if e.kind == "layer")
    console.print(f"layers total {human_size(total)}")


@cache_app.command("prune")
def cache_prune(
    cache: _CacheOpt = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size", metavar="SIZE",
            help="Evict least recently used layers until they total at most SIZE "
            "(e.g. 500M, 20G; default $ENVSHIP_CACHE_MAX; without either only leftovers go).",
        ),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Remove every layer and env view not in use.")
    ] = False,
) -> None:
    """Remove leftovers of interrupted runs and evict least recently used layers.

    Layers of an env a process is running in are never removed.
    """
    import os

    from ..node.cache import cache_root
    from ..node.fetch import parse_size
    from ..node.prune import prune

    if everything and max_size is not None:
        raise NodeError("--all and --max-size exclude each other: give one of them")
    limit_text = None if everything else (max_size or os.environ.get("ENVSHIP_CACHE_MAX"))
    where = "--max-size" if max_size else "$ENVSHIP_CACHE_MAX"
    try:
        limit = 0 if everything else (parse_size(limit_text) if limit_text else None)
    except ValueError:
        raise NodeError(
            f"{where} {limit_text!r} is not a positive size (like 500M, 20G); "
            "to empty the cache, use --all"
        ) from None
    removed = prune(cache_root(str(cache) if cache else None), limit) or []
    freed = sum(e.size for e in removed if e.kind == "layer")
    layers = sum(e.kind == "layer" for e in removed)
    envs = len(removed) - layers
    console.print(f"removed {layers} layers and {envs} env views, freed {human_size(freed)}")
