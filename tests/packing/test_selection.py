"""Distributions left out by default: uv, in an env that holds envship too."""

from __future__ import annotations

from pathlib import Path

import pytest

from envship.errors import PackError
from envship.packing.selection import select
from envship.packing.sources.snapshot import take_snapshot
from kits.clikit import envship
from kits.support import make_venv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a job's venv with envship installed for its Python API, a venv with uv and no envship)."""
    base = tmp_path_factory.mktemp("selection")
    return (make_venv(base / "with-envship", editable=[REPO]),
            make_venv(base / "uv-only", ["uv"]))


def test_uv_is_left_out_beside_envship_unless_asked_for(venvs: tuple[Path, Path]) -> None:
    with_envship, uv_only = venvs
    snap = take_snapshot(with_envship)
    assert {"envship", "uv"} <= {d.name for d in snap.distributions}
    chosen = select(snap)
    assert "uv" not in {d.name for d in chosen.kept}
    assert "envship" in {d.name for d in chosen.kept}
    (uv,) = [e for e in chosen.excluded if e.name == "uv"]
    assert "not run on nodes" in uv.reason and "--include uv" in uv.reason
    assert "uv" in {d.name for d in select(snap, include=["UV"]).kept}
    assert "uv" in {d.name for d in select(snap, only=["uv", "envship"]).kept}
    # the user's own uv, in an env without envship, is the user's: kept
    assert "uv" in {d.name for d in select(take_snapshot(uv_only)).kept}
    # one name as a string is that name, not its letters u, v
    assert "uv" not in {d.name for d in select(take_snapshot(uv_only), exclude="uv").kept}


def test_a_mistyped_option_names_itself(venvs: tuple[Path, Path]) -> None:
    import envship

    with pytest.raises(PackError, match="unknown option 'exlcude'"):
        envship.pack(python=str(venvs[1]), exlcude=["uv"])  # type: ignore[call-arg]
    with pytest.raises(PackError, match="unknown option 'tags'"):
        envship.ship(str(venvs[1] / "store"), python=str(venvs[1]),
                     tags="prod")  # type: ignore[call-arg]


def test_pack_says_so_and_ships_no_uv(venvs: tuple[Path, Path], tmp_path: Path,
                                      isolated_home: Path) -> None:
    with_envship, _ = venvs
    proc = envship("pack", "--python", str(with_envship), "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "left out uv " in proc.stderr and "--include uv" in proc.stderr
    shown = envship("inspect", str(tmp_path / "out")).stdout
    assert "envship" in shown and "not run on nodes" in shown
    blobs = list((tmp_path / "out" / "blobs").rglob("*.tar.gz"))
    # uv's binary is ~40 MB: no blob of this env comes near it
    assert blobs and max(b.stat().st_size for b in blobs) < 5_000_000
