"""Find where editable code lives: .pth path entries, import-hook finders, egg-links."""

from __future__ import annotations

import ast
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["SourceRoot", "editable_roots"]

log = logging.getLogger(__name__)

_HOOK_MODULE = re.compile(r"\b(__editable___\w+_finder|_editable_impl_\w+)\b")


class _RecordLike(Protocol):
    @property
    def path(self) -> str: ...


@dataclass(frozen=True)
class SourceRoot:
    """Where editable code lives and how it is imported.

    ``path``: a directory on sys.path (its importable top-level entries are the code);
    ``package``: a package directory imported as ``name``;
    ``module``: one file imported as ``name``.
    """

    kind: str  # "path" | "package" | "module"
    path: str
    name: str = ""  # import name for package/module (dotted for nested packages)
    top_level: tuple[str, ...] = ()  # for "path": top-level names the dist declares, if known


def _literal_assignment(tree: ast.Module, target: str) -> Any:
    for node in tree.body:
        value: ast.expr | None = None
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == target for t in node.targets)
        ) or (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == target
        ):
            value = node.value
        if value is not None:
            try:
                return ast.literal_eval(value)
            except ValueError:
                return None
    return None


def _hook_roots(module_file: str) -> list[SourceRoot]:
    """Roots named by a setuptools finder (MAPPING) or an ``editables`` redirector (map_module)."""
    try:
        with open(module_file, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), module_file)
    except (OSError, SyntaxError, ValueError) as exc:
        log.warning("cannot read editable hook %s: %s", module_file, exc)
        return []
    pairs: list[tuple[str, str]] = []
    mapping = _literal_assignment(tree, "MAPPING")
    if isinstance(mapping, dict):
        pairs += [(str(k), str(v)) for k, v in mapping.items()]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "map_module"
            and len(node.args) == 2
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        ):
            name, target = (a.value for a in node.args)  # type: ignore[attr-defined]
            pairs.append((str(name), str(target)))
    roots: list[SourceRoot] = []
    for name, target in pairs:
        if os.path.basename(target) == "__init__.py":
            target = os.path.dirname(target)
        if os.path.isdir(target):
            roots.append(SourceRoot("package", os.path.normpath(target), name))
        elif os.path.isfile(target):
            roots.append(SourceRoot("module", os.path.normpath(target), name))
        else:
            log.warning("editable hook %s maps %s to missing %s", module_file, name, target)
    return roots


def _top_level(meta_dir: str) -> tuple[str, ...]:
    try:
        with open(os.path.join(meta_dir, "top_level.txt"), encoding="utf-8") as fh:
            return tuple(sorted({ln.strip() for ln in fh if ln.strip()}))
    except OSError:
        return ()


def editable_roots(
    name: str, meta_dir: str, files: Iterable[_RecordLike], egg_link: str | None
) -> tuple[tuple[SourceRoot, ...], frozenset[str]]:
    """(where the code of editable dist *name* lives, its pointer files to leave out)."""
    top = _top_level(meta_dir)
    if egg_link:
        with open(egg_link, encoding="utf-8") as fh:
            target = fh.readline().strip()
        root = os.path.normpath(os.path.join(os.path.dirname(egg_link), target))
        return (SourceRoot("path", root, top_level=top),), frozenset()
    roots: list[SourceRoot] = []
    pointers: set[str] = set()
    paths = {f.path for f in files}
    for pth in sorted(p for p in paths if p.endswith(".pth")):
        site = os.path.dirname(pth)
        try:
            with open(pth, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            log.warning("editable %s: cannot read %s: %s", name, pth, exc)
            continue
        pointers.add(pth)
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(("import ", "import\t")):
                for mod in _HOOK_MODULE.findall(line):
                    hook = os.path.join(site, mod + ".py")
                    if os.path.isfile(hook):
                        pointers.add(hook)
                        roots += _hook_roots(hook)
                continue
            target = os.path.normpath(os.path.join(site, line))
            if os.path.isdir(target):
                roots.append(SourceRoot("path", target, top_level=top))
    unique = sorted(set(roots), key=lambda r: (r.kind, r.name, r.path))
    return tuple(unique), frozenset(pointers)
