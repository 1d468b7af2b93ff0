"""The migration benchmark's parts: its scenarios, the users' venvs, the diff of each script
pair and the bytes a run wrote to a store."""

from __future__ import annotations

import difflib
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import run, uv_bin, work_dir
from .refenv import ANCHOR_PACKAGES, PROFILES, _ensure

__all__ = [
    "HERE",
    "SCENARIOS",
    "TOOLS",
    "Scenario",
    "apply_edit",
    "diff_counts",
    "envship_wheel",
    "lay_out_run",
    "script",
    "snapshot",
    "user_venv",
    "written_bytes",
]

HERE = Path(__file__).parent / "migration"
TOOLS = ("cluster-pack", "envship")
SCRIPT = {"cluster-pack": "with_cluster_pack.py", "envship": "with_envship.py"}

_PINS = {p.split("==")[0]: p for p in PROFILES["full"]}
NUMPY, PANDAS, PYARROW = _PINS["numpy"], _PINS["pandas"], _PINS["pyarrow"]
PYSPARK, SKEIN, S3FS = "pyspark==4.3.0", "skein==0.8.2", "s3fs==2026.9.0"


@dataclass(frozen=True)
class Scenario:
    """One cluster-pack example and how it is run, edited and checked here."""

    name: str  # directory under benchmarks/migration/
    title: str
    packages: tuple[str, ...]  # the user's venv, besides the tool
    extras: str  # envship's extras for this scenario
    expect: str  # printed by a job that worked
    edit: tuple[str, str, str]  # (file in the run dir, line before, line after)
    edited: str  # printed by a job that ran the edited code
    steps: Mapping[str, tuple[str, ...]]  # the commands the user runs, per tool
    spark: bool = False
    s3: bool = False
    project: bool = False  # the user's code is the editable skein_project
    not_here: Mapping[str, str] | None = None  # tool -> why it cannot run on this machine


_EDIT = ("    a = np.random.random_integers(0, 100, 100)",
         "    a = np.random.random_integers(0, 100, 200)")
_PRINT = ('    print("Computed intersection of two arrays:")',
          '    print("Computed intersection of two arrays (edited):")')

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "spark", "numpy intersection on Spark (examples/spark)", (NUMPY, PYSPARK), "spark",
        "intersection of arrays len=1", ("{script}", *_EDIT), "intersection of arrays len=1",
        {"cluster-pack": ("pip install cluster-pack numpy pyspark", "python spark_example.py"),
         "envship": ("pip install 'envship[spark]' numpy pyspark", "python spark_example.py")},
        spark=True),
    Scenario(
        "spark_s3", "pandas_udf grouped agg, env on S3 (examples/spark-with-S3)",
        (NUMPY, PANDAS, PYARROW, PYSPARK, S3FS), "spark,s3", "mean_udf(v)",
        ("{script}", "[(1, 1.0), (1, 2.0), (2, 3.0), (2, 5.0), (2, 10.0)]",
         "[(1, 1.0), (1, 2.0), (2, 3.0), (2, 5.0), (2, 12.0)]"), "6.666667",
        {"cluster-pack": ("pip install cluster-pack s3fs pandas pyspark",
                          "python spark_example.py"),
         "envship": ("pip install 'envship[spark,s3]' pandas pyspark",
                     "python spark_example.py")},
        spark=True, s3=True,
        not_here={"cluster-pack": "does not run here: needs the S3A connector (hadoop-aws) in "
                                  "Spark, and there is no Maven here to fetch it"}),
    Scenario(
        "skein_project", "module of an editable project on YARN (examples/skein-project)",
        (NUMPY, SKEIN), "yarn", "Computed intersection of two arrays:",
        ("{project}/skein_project/worker.py", *_PRINT), "arrays (edited):",
        {"cluster-pack": ("pip install cluster-pack", "pip install -e .",
                          "python -m skein_project.client"),
         "envship": ("pip install 'envship[yarn]'", "pip install -e .",
                     "python -m skein_project.client")},
        project=True),
    Scenario(
        "interactive", "a function on YARN, build_with_func (examples/interactive-mode)",
        (NUMPY, SKEIN), "yarn", "Computed intersection of two arrays:", ("{script}", *_PRINT),
        "arrays (edited):",
        {"cluster-pack": ("pip install cluster-pack numpy skein", "python (the script)"),
         "envship": ("pip install 'envship[yarn]' numpy", "python (the script)")}),
)


def script(scenario: Scenario, tool: str) -> Path:
    return HERE / scenario.name / SCRIPT[tool]


def diff_counts(before: str, after: str) -> tuple[int, int]:
    """(lines added, lines removed) going from *before* to *after*, as difflib counts them."""
    added = removed = 0
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=0,
                                     lineterm=""):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed


def envship_wheel(out: Path) -> Path:
    """A wheel of this checkout, what `pip install envship` brings a user."""
    shutil.rmtree(out, ignore_errors=True)
    run([uv_bin(), "build", "-q", "--wheel", "-o", str(out), str(HERE.parents[1])])
    return next(out.glob("envship-*.whl"))


def user_venv(scenario: Scenario, tool: str, wheel: Path) -> Path:
    """The user's venv for *scenario* with *tool* (cached; envship reinstalled every run).

    Its editable project, if any, is a copy under the venv's directory, reset here."""
    root = work_dir() / "migration" / f"{scenario.name}-{tool}"
    venv = root / "venv"
    project = root / "project"
    if scenario.project:
        shutil.copytree(HERE / scenario.name / "project", project, dirs_exist_ok=True)
    tool_pkgs = ANCHOR_PACKAGES["cluster-pack"] if tool == "cluster-pack" else ()
    spec = [list(scenario.packages), list(tool_pkgs), scenario.project]

    def build() -> None:
        uv = uv_bin()
        run([uv, "venv", "-q", "--seed", "-p", sys.executable, str(venv)])
        extra = ["-e", str(project)] if scenario.project else []
        run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"),
             *scenario.packages, *tool_pkgs, *extra])

    _ensure(venv, spec, build)
    python = str(venv / "bin" / "python")
    if tool == "envship":
        run([uv_bin(), "pip", "install", "-q", "-p", python, "--compile-bytecode",
             "--reinstall-package", "envship", f"envship[{scenario.extras}] @ {wheel.as_uri()}"])
    compiled = venv / ".bench-compiled"
    if not compiled.exists():  # as pip leaves a venv (uv does not compile by default)
        site = next((venv / "lib").glob("python3*/site-packages"))
        # not checked: a few packages ship files that do not compile (templates, py2 tests)
        subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(site)],
                       capture_output=True, check=False)
        compiled.touch()
    return venv


def lay_out_run(scenario: Scenario, tool: str, run_dir: Path) -> Path:
    """A fresh run directory holding the user's script and no_yarn.py; the script's path."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    target = run_dir / SCRIPT[tool]
    shutil.copy(script(scenario, tool), target)
    shutil.copy(HERE / "no_yarn.py", run_dir / "no_yarn.py")
    return target


def apply_edit(path: Path, before: str, after: str) -> None:
    """The user's one-line edit: *before* must be exactly one line of *path*."""
    lines = path.read_text().splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if before in line]
    if len(hits) != 1:
        raise ValueError(f"{path}: {before!r} found on {len(hits)} lines, expected 1")
    lines[hits[0]] = lines[hits[0]].replace(before, after)
    path.write_text("".join(lines))


def snapshot(fs: Any, root: str) -> dict[str, tuple[object, ...]]:
    """Every object under *root* of an fsspec filesystem, with what changes when rewritten."""
    if not fs.exists(root):
        return {}
    found = fs.find(root, detail=True)
    return {path: (info.get("size"), info.get("mtime"), info.get("ino"), info.get("ETag"),
                   info.get("LastModified")) for path, info in found.items()}


def written_bytes(before: Mapping[str, tuple[object, ...]],
                  after: Mapping[str, tuple[object, ...]]) -> tuple[int, list[str]]:
    """Bytes of the objects that are new or rewritten in *after*, and their paths."""
    paths = sorted(path for path, key in after.items() if before.get(path) != key)
    return sum(int(after[path][0] or 0) for path in paths), paths
