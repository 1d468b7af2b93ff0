"""Compile a freshly unpacked layer's modules with the env's interpreter, before it is committed."""

from __future__ import annotations

import os
import subprocess

from .errors import NodeError

__all__ = ["compile_tree", "COMPILE_PROGRAM"]

# Runs under the env's interpreter with -I (stdlib only). Hash-based pycs that are never checked
# against their source: a committed layer never changes. co_filename is the path relative to the
# compiled tree, as pack writes it. Files that do not compile (py2 leftovers, templates) are
# skipped, as pip does.
COMPILE_PROGRAM = """\
import compileall, os, py_compile, re, sys
tree, skip = sys.argv[1], sys.argv[2]
# the skip pattern applies below the tree only (the cache's own path may hold a "test" dir)
rx = re.compile(re.escape(tree) + r"(?:[\\/][^\\/]+)*?" + skip) if skip else None
compileall.compile_dir(
    tree, quiet=2, workers=0 if (os.cpu_count() or 1) > 1 else 1, rx=rx, stripdir=tree,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def compile_tree(tree: str, python: str, label: str, skip: str = "") -> int:
    """Byte-compile every ``.py`` under *tree* with *python*; return the ``.pyc`` files written.

    *skip*: a regex of paths below *tree* not to compile, starting with a separator
    (``[\\/]tests[\\/]``). The new ``.pyc`` files are made read-only like the
    rest of the layer. NodeError if the interpreter cannot run the compiler at all.
    """
    if not os.path.isdir(tree):
        return 0
    try:
        proc = subprocess.run(
            [python, "-I", "-c", COMPILE_PROGRAM, tree, skip],
            capture_output=True, text=True, timeout=3600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise NodeError(f"layer {label}: cannot byte-compile it with {python} ({exc})") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise NodeError(
            f"layer {label}: byte-compiling it with {python} failed (exit {proc.returncode}: "
            f"{last})"
        )
    count = 0
    for dirpath, _, filenames in os.walk(tree):
        if os.path.basename(dirpath) != "__pycache__":
            continue
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
            count += 1
    return count
