"""Console-script entry point: `envship exec` takes a fast path that imports only the stdlib."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "exec":
        # Job start-up latency matters here: skip typer/rich and go straight to the node runtime.
        from .node.__main__ import main as node_main

        sys.exit(node_main(sys.argv[2:], prog="envship exec"))
    from .cli import run

    run()
