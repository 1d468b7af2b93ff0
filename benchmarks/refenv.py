"""Build (once, cached) the reference venv, its editable project and the anchors' own venvs."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .common import run, uv_bin, work_dir

__all__ = ["PROFILES", "Anchors", "RefEnv", "anchors", "edit_code", "pip_installed",
           "reference_env"]

# Pinned so that figures from different days compare; bump deliberately.
PROFILES: dict[str, tuple[str, ...]] = {
    "full": ("numpy==2.4.6", "pandas==3.1.1", "pyarrow==26.0.1", "scikit-learn==1.9.1"),
    "quick": ("six==1.17.0", "attrs==26.1.0"),
}
ANCHOR_PACKAGES: dict[str, tuple[str, ...]] = {
    "cluster-pack": ("cluster-pack==0.3.19",),
    "venv-pack": ("venv-pack==0.2.0",),
    "pex": ("pex==2.105.2",),
}
PROJECT = "benchlib"


@dataclass(frozen=True)
class RefEnv:
    """The reference environment: a uv venv with wheels and one editable project."""

    profile: str
    root: Path  # <work>/<profile>
    venv: Path  # the venv with the editable install (what envship and cluster-pack pack)
    twin: Path  # same packages, project installed non-editable (venv-pack refuses editables)
    project: Path  # the editable project's checkout
    packages: tuple[str, ...]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages"))

    def frozen_requirements(self) -> list[str]:
        """`name==version` of every non-editable distribution (as `uv pip freeze` reports)."""
        out = run([uv_bin(), "pip", "freeze", "-p", str(self.python), "--exclude-editable"])
        return [line for line in out.stdout.splitlines() if line and not line.startswith("#")]


@dataclass(frozen=True)
class Anchors:
    """One venv per anchor tool, never mixed with the reference env."""

    cluster_pack: Path
    venv_pack: Path
    pex: Path
    node_python: Path  # an empty venv's interpreter: stands in for a node's plain Python

    def bin(self, venv: Path, name: str) -> str:
        return str(venv / "bin" / name)


def _write_project(root: Path) -> None:
    pkg = root / "src" / PROJECT
    pkg.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{PROJECT}"
            version = "0.1"
            """
        )
    )
    edit_code_at(root, 0)
    for i in range(8):  # a few modules, like a small real project
        body = "".join(f"def f{j}(x):\n    return x * {j} + {i}\n\n\n" for j in range(30))
        (pkg / f"mod{i}.py").write_text(f'"""Module {i}."""\n\n\n{body}')


def edit_code_at(project: Path, value: int) -> None:
    """Write the one line of the editable package that benchmarks edit."""
    init = project / "src" / PROJECT / "__init__.py"
    init.write_text(f'"""Benchmark project."""\n\nVALUE = {value}\n')


def edit_code(env: RefEnv, value: int) -> None:
    edit_code_at(env.project, value)


def _stamp(path: Path, spec: object) -> tuple[Path, str]:
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return path / ".bench-stamp", key


def _make_venv(venv: Path, packages: tuple[str, ...], extra: list[str]) -> None:
    uv = uv_bin()
    run([uv, "venv", "-q", "--seed", "-p", sys.executable, str(venv)])
    run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), *packages, *extra])


def _make_pip_venv(venv: Path, packages: tuple[str, ...], extra: list[str]) -> None:
    """Like `_make_venv`, but the packages are installed by pip, which byte-compiles them."""
    run([uv_bin(), "venv", "-q", "--seed", "-p", sys.executable, str(venv)])
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", *packages, *extra],
        env={"PYTHONDONTWRITEBYTECODE": ""})  # empty = unset for CPython, as on a user's machine


def _ensure(venv: Path, spec: object, build: object) -> None:
    stamp, key = _stamp(venv, spec)
    if stamp.exists() and stamp.read_text() == key:
        return
    if venv.exists():
        import shutil

        shutil.rmtree(venv)
    build()  # type: ignore[operator]
    stamp.write_text(key)


def reference_env(profile: str) -> RefEnv:
    """Create (or reuse) the reference venv, its non-editable twin and the project."""
    packages = PROFILES[profile]
    root = work_dir() / profile
    project = root / PROJECT
    if not (project / "pyproject.toml").exists():
        _write_project(project)
    edit_code_at(project, 0)
    venv, twin = root / "ref", root / "ref-noneditable"
    _ensure(venv, [packages, "editable"], lambda: _make_venv(venv, packages, ["-e", str(project)]))
    _ensure(twin, [packages, "plain"], lambda: _make_venv(twin, packages, [str(project)]))
    return RefEnv(profile, root, venv, twin, project, packages)


def pip_installed(env: RefEnv) -> RefEnv:
    """The same packages and project installed by pip: a venv holding a pyc for every module."""
    venv, twin = env.root / "ref-pip", env.root / "ref-pip-noneditable"
    pkgs, project = env.packages, env.project
    _ensure(venv, [pkgs, "pip", "editable"],
            lambda: _make_pip_venv(venv, pkgs, ["-e", str(project)]))
    _ensure(twin, [pkgs, "pip", "plain"], lambda: _make_pip_venv(twin, pkgs, [str(project)]))
    return RefEnv(env.profile, env.root, venv, twin, project, pkgs)


def anchors() -> Anchors:
    """Create (or reuse) one venv per anchor tool."""
    root = work_dir() / "anchors"
    paths = {}
    for name, pkgs in ANCHOR_PACKAGES.items():
        venv = root / name
        _ensure(venv, list(pkgs), lambda v=venv, p=pkgs: _make_venv(v, p, []))
        paths[name] = venv
    # A node's "system Python": an empty venv, so that site .pth files of this machine's base
    # interpreter (a sandbox hook here imports certifi: +300 ms per start) stay out of it.
    node = root / "node-python"
    _ensure(node, ["empty"], lambda: run([uv_bin(), "venv", "-q", "-p", sys.executable,
                                          str(node)]))
    return Anchors(paths["cluster-pack"], paths["venv-pack"], paths["pex"],
                   node / "bin" / "python")
