"""Console-script entry point: `envship exec` takes a fast path that imports only the stdlib."""

from __future__ import annotations

import sys

__all__ = ["main"]


def _wants_help(args: list[str]) -> bool:
    """`envship exec [options] -h`: the help is typer's, like every other command's."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        if args[i] in ("-h", "--help"):
            return True
        i += 2 if args[i] in ("--cache", "--python") else 1
    return False


def main() -> None:
    args = sys.argv[1:]
    n = 0  # `envship -v exec ...`, `envship -q exec ...`
    while n < len(args) and args[n] in ("-v", "--verbose", "-q", "--quiet"):
        n += 1
    if args[n:n + 1] == ["exec"] and not _wants_help(args[n + 1:]):
        # Job start-up latency matters here: skip typer/rich and go straight to the node runtime.
        from .node.__main__ import main as node_main

        sys.exit(node_main([*args[:n], *args[n + 1:]], prog="envship exec"))
    from .cli import run

    run()
