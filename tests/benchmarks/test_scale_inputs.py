"""benchmarks.scale picks the newest results that hold what its model needs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # `benchmarks` is a package at the top of the checkout

from benchmarks.scale import latest_results  # noqa: E402


def _write(path: Path, figures: list[tuple[str, str, float]]) -> None:
    rows = [{"step": s, "tool": t, "value": v} for s, t, v in figures]
    path.write_text(json.dumps({"figures": rows}))


def test_a_newer_run_without_layer_sizes_is_passed_over(tmp_path: Path) -> None:
    sizes = [("size: deps layer", "envship", 1e8), ("size: code layer", "envship", 2e3)]
    _write(tmp_path / "full-20261125T140554Z.json", sizes)
    _write(tmp_path / "quick-20261201T101010Z.json", sizes)
    _write(tmp_path / "full-20261201T120000Z.json", [("spark: first task", "envship", 9.1)])
    (tmp_path / "scale-full-20261201T120000Z.json").write_text("{}")
    assert latest_results(tmp_path) == tmp_path / "quick-20261201T101010Z.json"
    (tmp_path / "quick-20261201T101010Z.json").unlink()
    assert latest_results(tmp_path) == tmp_path / "full-20261125T140554Z.json"
    (tmp_path / "full-20261125T140554Z.json").unlink()
    assert latest_results(tmp_path) is None
