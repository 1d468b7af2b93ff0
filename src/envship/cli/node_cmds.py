"""CLI commands: exec, node-script, cache ls, cache prune, cache warm."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..node import NodeError
from .app import (
    AsJson,
    app,
    console,
    err_console,
    human_size,
    plural,
    short_id,
    state,
    utc_iso,
    utc_stamp,
)

__all__: list[str] = []

cache_app = typer.Typer(help="Inspect and trim this node's env cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

_CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache", metavar="DIR",
                 help="Node cache (default: $ENVSHIP_CACHE, else ~/.cache/envship)."),
]


@app.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def exec_cmd(
    env_ref: Annotated[
        str | None,
        typer.Argument(metavar="ENV_REF",
                       help="Env URI (<store>/envs/<env-id>.json: a path, file://, http(s):// or "
                            "any fsspec URL), tag URI, packed env directory or presigned "
                            "manifest. Leave it out (`envship exec -- CMD`) to read it from "
                            "$ENVSHIP_ENV (or the 0600 file $ENVSHIP_ENV_FILE names), off the "
                            "command line other users can read."),
    ] = None,
    cmd: Annotated[
        list[str] | None,
        typer.Argument(metavar="-- CMD", help="The command to run inside the env, and its "
                                              "arguments."),
    ] = None,
    cache: _CacheOpt = None,
    python: Annotated[
        str | None,
        typer.Option("--python", metavar="PATH",
                     help="Interpreter to use when the env has no python layer (default: "
                          "$ENVSHIP_PYTHON, else python3.X / python3 on PATH)."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One line per fetched layer on stderr.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No warnings on stderr (errors still).")
    ] = False,
) -> None:
    """Run CMD inside an env, fetching and verifying its layers into the node cache first.

    CMD replaces this process: its exit code and signals pass through unchanged.
    """
    from ..node import main as node_main

    args = ["-v"] if verbose or state.verbose else ["-q"] if quiet or state.quiet else []
    if cache is not None:
        args += ["--cache", str(cache)]
    if python is not None:
        args += ["--python", python]
    sys.exit(node_main([*args, *([env_ref] if env_ref else []), *(cmd or [])],
                       prog="envship exec"))


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

    On a node without envship: python3 envship_node.py ENV_URI -- CMD... (or the env URI in
    $ENVSHIP_ENV, off the command line: python3 envship_node.py -- CMD...)
    """
    from ..node import script_text, write_script

    if output is None:
        sys.stdout.write(script_text())
        return
    written = write_script(str(output))
    err_console.print(f"wrote {written}", highlight=False)


def _cache_root(cache: Path | None) -> str:
    """The node cache directory; NodeError if it exists and is not a directory."""
    import os

    from ..node import cache_root

    root = cache_root(str(cache) if cache else None)
    if os.path.exists(root) and not os.path.isdir(root):
        raise NodeError(f"node cache {root} is not a directory; choose another with --cache or "
                        "ENVSHIP_CACHE")
    return root


@cache_app.command("warm")
def cache_warm(
    env_refs: Annotated[
        list[str],
        typer.Argument(metavar="ENV_REF", help="Env URIs, tag URIs, packed env directories or "
                                                  "presigned manifests."),
    ],
    cache: _CacheOpt = None,
    python: Annotated[
        str | None,
        typer.Option("--python", metavar="PATH",
                     help="Interpreter for envs without a python layer (default: "
                          "$ENVSHIP_PYTHON, else python3.X / python3 on PATH)."),
    ] = None,
) -> None:
    """Fetch, unpack and assemble envs without running anything.

    Run as root or a service account on a shared node cache: the entries it makes are ones
    every user trusts (see 'Trust model' in docs/node.md). Prints each env view's path.
    """
    from ..node import warm

    root = _cache_root(cache)
    log = (lambda m: err_console.print(f"envship: {m}", highlight=False)) if state.verbose else None
    for ref in env_refs:
        path, _ = warm(ref, root, python, log)
        print(path)


@cache_app.command("ls")
def cache_ls(
    cache: _CacheOpt = None,
    as_json: AsJson = False,
) -> None:
    """List unpacked layers and env views with size, last use and whether a process uses them."""
    import os

    from ..node import CacheEntry, list_cache

    root = _cache_root(cache)
    entries = list_cache(root)
    if as_json:
        rows = [{**e.as_dict(), "last_use": utc_iso(e.last_use)} for e in entries]
        print(json.dumps(rows, indent=2))
        return
    if not entries:
        console.print("the node cache is empty")
        return
    from rich.table import Table

    def area(e: CacheEntry) -> str:  # <area>/layers/<hex>, <area>/envs/<id>
        where = os.path.dirname(os.path.dirname(e.path))
        return "" if where == root else where

    columns = ["kind", "id", "size", "last use (UTC)", "in use"]
    elsewhere = any(area(e) for e in entries)  # built in this user's own area
    table = Table(*columns, *(["area"] if elsewhere else []), box=None, pad_edge=False)
    for e in entries:
        size = human_size(e.size) if e.kind == "layer" else plural(len(e.layers), "layer")
        in_use = "yes" if e.in_use else ""
        table.add_row(e.kind, short_id(e.name), size, utc_stamp(e.last_use), in_use,
                      *([area(e)] if elsewhere else []))
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

    from ..node import parse_size, prune_cache

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
    removed = prune_cache(_cache_root(cache), limit) or []
    freed = sum(e.size for e in removed if e.kind == "layer")
    layers = sum(e.kind == "layer" for e in removed)
    envs = len(removed) - layers
    console.print(f"removed {plural(layers, 'layer')} and {plural(envs, 'env view')}, freed "
                  f"{human_size(freed)}")
