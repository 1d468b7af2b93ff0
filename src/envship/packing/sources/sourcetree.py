"""Walk a developer's source tree: package files only (no VCS, caches, builds, venvs, ignored)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .editables import SourceRoot

if TYPE_CHECKING:  # pathspec is imported only for a project that has a .gitignore
    import pathspec

__all__ = ["SourceWalker", "root_entries", "SKIP_DIRS"]

log = logging.getLogger(__name__)

SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
     ".ruff_cache", ".ipynb_checkpoints", "node_modules", ".venv", "venv", ".eggs", ".idea",
     ".vscode"}
)
_SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-link", ".swp")
_PROJECT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg")
_NOT_MODULES = frozenset({"setup.py", "conftest.py", "noxfile.py"})


class SourceWalker:
    """Walks source trees, honouring the enclosing project's .gitignore (found once per dir)."""

    def __init__(self) -> None:
        self._projects: dict[str, tuple[str, pathspec.GitIgnoreSpec | None]] = {}

    def _project(self, start: str) -> tuple[str, pathspec.GitIgnoreSpec | None]:
        """The project enclosing *start* (nearest .git / pyproject.toml) and its ignores."""
        if start in self._projects:
            return self._projects[start]
        probe = start
        project = start
        for _ in range(6):
            if any(os.path.exists(os.path.join(probe, m)) for m in _PROJECT_MARKERS):
                project = probe
                break
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        spec = None
        gitignore = os.path.join(project, ".gitignore")
        if os.path.isfile(gitignore):
            import pathspec

            with open(gitignore, encoding="utf-8", errors="replace") as fh:
                spec = pathspec.GitIgnoreSpec.from_lines(fh.read().splitlines())
            # A root inside an ignored dir (setuptools' strict-mode link tree under build/)
            # is still the code: ignore rules are not applied to it.
            if spec is not None and project != start and self._ignored(project, spec, start, True):
                spec = None
        self._projects[start] = (project, spec)
        return project, spec

    def _ignored(
        self, project: str, spec: pathspec.GitIgnoreSpec | None, path: str, is_dir: bool
    ) -> bool:
        if spec is None:
            return False
        rel = os.path.relpath(path, project).replace(os.sep, "/")
        if rel.startswith("../"):
            return False
        return bool(spec.match_file(rel + "/" if is_dir else rel))

    def _skip_dir(self, path: str, name: str) -> bool:
        if name in SKIP_DIRS or name.endswith(".egg-info"):
            return True
        if name in ("build", "dist") and not os.path.exists(os.path.join(path, "__init__.py")):
            return True
        return os.path.exists(os.path.join(path, "pyvenv.cfg"))

    def walk_dir(
        self, root: str, arcbase: str, *, metadata: bool = False
    ) -> Iterator[tuple[str, str]]:
        """(arcname, path) of the files under *root*, arcnames under *arcbase*.

        ``metadata=True`` walks a metadata/stray directory as is (only caches skipped).
        """
        project, spec = (root, None) if metadata else self._project(os.path.dirname(root))
        for dirpath, dirnames, filenames in os.walk(root):
            if metadata:
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            else:
                dirnames[:] = sorted(
                    d for d in dirnames
                    if not self._skip_dir(os.path.join(dirpath, d), d)
                    and not self._ignored(project, spec, os.path.join(dirpath, d), True)
                )
            rel = os.path.relpath(dirpath, root)
            arcdir = arcbase if rel == "." else f"{arcbase}/{rel.replace(os.sep, '/')}"
            for name in sorted(filenames):
                if name.endswith(_SKIP_SUFFIXES):
                    continue
                full = os.path.join(dirpath, name)
                if not metadata and self._ignored(project, spec, full, False):
                    continue
                yield f"{arcdir}/{name}", full

    def path_root_entries(self, root: SourceRoot) -> Iterator[tuple[str, str]]:
        """A sys.path directory: its importable top-level packages and modules."""
        project, spec = self._project(root.path)
        try:
            names = sorted(os.listdir(root.path))
        except OSError as exc:
            log.warning("cannot list editable source dir %s: %s", root.path, exc)
            return
        wanted = set(root.top_level)
        for name in names:
            full = os.path.join(root.path, name)
            stem = name.split(".", 1)[0]
            if wanted and stem not in wanted:
                continue
            if os.path.isdir(full):
                if not name.isidentifier() or self._skip_dir(full, name):
                    continue
                if not wanted and not os.path.exists(os.path.join(full, "__init__.py")):
                    continue
                if self._ignored(project, spec, full, True):
                    continue
                yield from self.walk_dir(full, f"site-packages/{name}")
            elif name.endswith((".py", ".so", ".pyd")) and stem.isidentifier():
                if name in _NOT_MODULES or self._ignored(project, spec, full, False):
                    continue
                yield f"site-packages/{name}", full


def root_entries(walker: SourceWalker, root: SourceRoot) -> Iterator[tuple[str, str]]:
    """(arcname, path) of the files an editable source root contributes to the code layer."""
    if root.kind == "path":
        yield from walker.path_root_entries(root)
        return
    parts = root.name.split(".")
    if root.kind == "package":
        yield from walker.walk_dir(root.path, "site-packages/" + "/".join(parts))
    else:
        arc = "/".join(["site-packages", *parts[:-1], os.path.basename(root.path)])
        yield arc, root.path
