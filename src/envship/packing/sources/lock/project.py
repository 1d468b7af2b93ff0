"""The project's own code as an editable-like distribution, so the core builds its code layer."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ....errors import PackError
from .tomlfile import load_toml

__all__ = ["ProjectCode", "find_project", "write_editable_stub"]

log = logging.getLogger(__name__)

_NOT_PACKAGES = frozenset(
    {"tests", "test", "docs", "doc", "examples", "example", "benchmarks", "scripts", "tools",
     "build", "dist", "site-packages"}
)


@dataclass(frozen=True)
class ProjectCode:
    """A project directory: its name/version, import roots and entry points."""

    root: Path
    name: str
    version: str
    source_dir: Path  # the directory on sys.path holding the top-level packages
    top_level: tuple[str, ...]  # importable top-level names under source_dir
    entry_points: dict[str, dict[str, str]]




def _importables(src: Path) -> list[str]:
    names: list[str] = []
    for entry in sorted(src.iterdir()):
        stem = entry.name.split(".", 1)[0]
        if entry.name.startswith((".", "_")) and entry.name != "__init__.py" and not (
            entry.is_dir() and stem.isidentifier()
        ):
            continue
        if entry.is_dir() and entry.name.isidentifier() and entry.name not in _NOT_PACKAGES:
            if (entry / "__init__.py").exists() or src.name == "src":
                names.append(entry.name)
        elif entry.suffix == ".py" and stem.isidentifier() and entry.name not in (
            "setup.py", "conftest.py", "noxfile.py"
        ):
            names.append(stem)
    return names


def _layout(root: Path, project: dict[str, Any], tool: dict[str, Any], name: str
            ) -> tuple[Path, list[str]]:
    hatch = tool.get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    if isinstance(hatch.get("packages"), list) and hatch["packages"]:
        dirs = [root / p for p in hatch["packages"]]
        parents = {d.parent for d in dirs}
        if len(parents) == 1:
            return parents.pop(), sorted(d.name for d in dirs)
    st = tool.get("setuptools", {})
    pkg_dir = st.get("package-dir", {})
    if isinstance(pkg_dir, dict) and "" in pkg_dir:
        src = root / str(pkg_dir[""])
        return src, _importables(src)
    where = st.get("packages", {})
    if isinstance(where, dict) and isinstance(where.get("find", {}).get("where"), list):
        src = root / str(where["find"]["where"][0])
        return src, _importables(src)
    if (root / "src").is_dir():
        return root / "src", _importables(root / "src")
    import_name = re.sub(r"[-.]+", "_", name).lower()
    if (root / import_name).is_dir() or (root / f"{import_name}.py").is_file():
        return root, [import_name]
    return root, _importables(root)


def find_project(path: str | os.PathLike[str]) -> ProjectCode:
    """Read ``pyproject.toml`` under *path* and find where its importable code lives."""
    root = Path(path).expanduser().resolve()
    if root.is_file() and root.name == "pyproject.toml":
        root = root.parent
    py = root / "pyproject.toml"
    if not py.is_file():
        raise PackError(f"--code {root}: no pyproject.toml there; give the project directory.")
    data = load_toml(py)
    project = data.get("project", {})
    name = project.get("name")
    if not isinstance(name, str) or not name:
        raise PackError(f"{py}: [project] has no name.")
    version = project.get("version")
    if not isinstance(version, str):
        version = "0+local"  # dynamic versions need a build backend; the code is what counts
    src, top = _layout(root, project, data.get("tool", {}), name)
    if not top:
        raise PackError(
            f"{py}: found no importable package or module of {name} under {src}; "
            "use a src/ layout or name the packages in [tool.hatch.build.targets.wheel]."
        )
    eps: dict[str, dict[str, str]] = {}
    for group, key in (("console_scripts", "scripts"), ("gui_scripts", "gui-scripts")):
        if isinstance(project.get(key), dict):
            eps[group] = {str(k): str(v) for k, v in project[key].items()}
    for group, items in (project.get("entry-points") or {}).items():
        if isinstance(items, dict):
            eps[str(group)] = {str(k): str(v) for k, v in items.items()}
    return ProjectCode(root, name, version, src, tuple(top), eps)


def _entry_points_txt(eps: dict[str, dict[str, str]]) -> str:
    out = []
    for group in sorted(eps):
        out.append(f"[{group}]")
        out += [f"{k} = {v}" for k, v in sorted(eps[group].items())]
        out.append("")
    return "\n".join(out)


def write_editable_stub(project: ProjectCode, site_dir: Path) -> Path:
    """Write what an editable install of *project* leaves in *site_dir*; its dist-info dir.

    A ``.pth`` naming the source dir, and a dist-info (METADATA, top_level.txt,
    entry_points.txt, direct_url.json, RECORD): the core's snapshot turns that into an
    editable distribution whose code layer holds the project's packages.
    """
    dist_name = re.sub(r"[-_.]+", "_", project.name)
    version = re.sub(r"[^A-Za-z0-9.+]", "_", project.version)
    info = site_dir / f"{dist_name}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    files = {
        "METADATA": f"Metadata-Version: 2.1\nName: {project.name}\nVersion: {project.version}\n",
        "top_level.txt": "".join(f"{n}\n" for n in project.top_level),
        "INSTALLER": "envship\n",
        "direct_url.json": json.dumps(
            {"url": project.root.as_uri(), "dir_info": {"editable": True}}, sort_keys=True
        ),
    }
    if project.entry_points:
        files["entry_points.txt"] = _entry_points_txt(project.entry_points)
    for fname, text in files.items():
        (info / fname).write_text(text, encoding="utf-8")
    pth = site_dir / f"__editable__.{dist_name}-{version}.pth"
    pth.write_text(f"{project.source_dir}\n", encoding="utf-8")
    rows = [f"{info.name}/{f},," for f in sorted([*files, "RECORD"])] + [f"{pth.name},,"]
    (info / "RECORD").write_text("\n".join(sorted(rows)) + "\n", encoding="utf-8")
    return info
