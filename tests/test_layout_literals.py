"""Nobody but envship.node.formats spells the store layout or a schema name."""

from __future__ import annotations

import ast
from pathlib import Path

import envship

# -- nobody else spells the layout or a schema name -----------------------------------------
_LAYOUT_WORDS = {"blobs", "envs", "tags", "leases", "sweeps", "fingerprints"}
SRC = Path(envship.__file__).resolve().parent


_PATH_CALLS = {"join", "joinpath", "path", "url_of", "Path", "PurePosixPath"}


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _layout_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants naming the store layout: a schema name, a ``blobs/sha256`` path, or a
    layout folder passed to a path-joining call or a ``/`` operator."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
            "envship.manifest/" in node.value or "blobs/sha256" in node.value
        ):
            found.append((node.lineno, node.value))
        if isinstance(node, ast.Call) and _callee(node) in _PATH_CALLS:
            args = node.args
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            args = [node.left, node.right]
        else:
            continue
        for arg in args:
            if isinstance(arg, ast.Constant) and arg.value in _LAYOUT_WORDS:
                found.append((arg.lineno, str(arg.value)))
    return found


def test_no_layout_literal_outside_the_formats_module() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "node" / "formats.py":
            continue
        for line, text in _layout_literals(ast.parse(path.read_text(), str(path))):
            bad.append(f"{path.relative_to(SRC)}:{line}: {text!r}")
    assert bad == []


def test_the_literal_check_catches_a_spelled_path() -> None:
    code = 'import os\nos.path.join(root, "blobs", "sha256")\nx = "envship.manifest/2"\n'
    assert sorted(t for _, t in _layout_literals(ast.parse(code))) == [
        "blobs", "envship.manifest/2"]
