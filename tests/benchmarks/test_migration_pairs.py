"""The migration benchmark's script pairs stay runnable: the envship versions import and name
only envship calls that exist, each scenario's one-line edit still applies, and the diff
counting counts what difflib sees. No Spark, no YARN: well under a second."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # `benchmarks` is a package at the top of the checkout

from benchmarks.migration_kit import (  # noqa: E402
    HERE,
    SCENARIOS,
    TOOLS,
    Scenario,
    apply_edit,
    diff_counts,
    script,
)

NAMES = [s.name for s in SCENARIOS]


def _envship_calls(tree: ast.AST) -> set[str]:
    """Dotted names `envship.x.y` the script uses."""
    found = set()
    for node in ast.walk(tree):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "envship" and parts:
            found.add(".".join(["envship", *reversed(parts)]))
    return found


@pytest.mark.parametrize("name", NAMES)
def test_envship_version_imports_and_its_calls_exist(name: str) -> None:
    scn = next(s for s in SCENARIOS if s.name == name)
    path = script(scn, "envship")
    spec = importlib.util.spec_from_file_location(f"migration_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the body is under `if __name__ == "__main__"`
    calls = _envship_calls(ast.parse(path.read_text()))
    assert any(c.endswith(("configure", "application_spec", "function_spec")) for c in calls)
    for dotted in calls:
        mod, _, attr = dotted.rpartition(".")
        target = importlib.import_module(mod) if mod != "envship" else module.envship
        assert hasattr(target, attr) or importlib.util.find_spec(dotted), dotted


@pytest.mark.parametrize("name", NAMES)
def test_cluster_pack_version_compiles_and_the_pair_differs(name: str) -> None:
    scn = next(s for s in SCENARIOS if s.name == name)
    texts = [script(scn, t).read_text() for t in TOOLS]
    compile(texts[0], str(script(scn, "cluster-pack")), "exec")
    assert "cluster_pack" in texts[0] and "cluster_pack" not in texts[1]
    added, removed = diff_counts(*texts)
    assert added > 0 and removed > 0


def _edited_file(scn: Scenario, tool: str, tmp: Path) -> Path:
    path = scn.edit[0]
    if "{project}" in path:
        shutil.copytree(HERE / scn.name / "project", tmp / "project")
        return Path(path.format(project=tmp / "project"))
    target = tmp / script(scn, tool).name
    shutil.copy(script(scn, tool), target)
    return target


@pytest.mark.parametrize("name", NAMES)
def test_the_one_line_edit_applies_to_both_versions(name: str, tmp_path: Path) -> None:
    scn = next(s for s in SCENARIOS if s.name == name)
    for tool in TOOLS:
        work = tmp_path / tool
        work.mkdir()
        target = _edited_file(scn, tool, work)
        before = target.read_text()
        apply_edit(target, scn.edit[1], scn.edit[2])
        assert diff_counts(before, target.read_text()) == (1, 1)
        with pytest.raises(ValueError, match="found on 0 lines"):
            apply_edit(target, scn.edit[1], scn.edit[2])


def test_diff_counts_added_and_removed_lines() -> None:
    assert diff_counts("a\nb\nc\n", "a\nB\nc\nd\n") == (2, 1)
    assert diff_counts("same\n", "same\n") == (0, 0)
    assert diff_counts("", "x\ny\n") == (2, 0)
