"""Stress with real processes: concurrent ships of envs sharing blobs, gc with zero grace
removing every untagged env over and over, and kill -9 of either side at random points.
Afterwards `store verify` finds nothing wrong and every env left in the store runs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envship.node import prepare
from envship.packing.manifest import Distribution, LayerRef, Manifest, PythonInfo
from envship.store import open_store
from kits.storekit import make_blob

WORKER = str(Path(__file__).with_name("churn_worker.py"))
HOST = "{}.{}.{}".format(*sys.version_info[:3])


def specs(root: Path, deps_variants: int = 2, code_variants: int = 3) -> Path:
    """Envs = every (deps, code) pair: each deps blob and each code blob is in several envs."""
    deps = [make_blob(root / f"deps{i}.tar.gz",
                      {"site-packages/dep/__init__.py": f"D = {i}\n".encode()})
            for i in range(deps_variants)]
    code = [make_blob(root / f"code{j}.tar.gz",
                      {"site-packages/mylib/__init__.py": f"VALUE = {j}\n".encode()})
            for j in range(code_variants)]
    out = []
    for d in deps:
        for c in code:
            manifest = Manifest(
                python=PythonInfo("cpython", HOST, f"cp{sys.version_info[0]}"
                                  f"{sys.version_info[1]}", "linux_x86_64"),
                layers=(LayerRef("code", c[1], c[2], 1), LayerRef("deps", d[1], d[2], 1)),
                distributions=(Distribution("mylib", "0.1", "editable", "code"),),
            )
            out.append({"manifest": manifest.to_dict(),
                        "blobs": {c[1]: str(c[0]), d[1]: str(d[0])}})
    path = root / "specs.json"
    path.write_text(json.dumps(out))
    return path


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def check_store(url: str, tmp_path: Path) -> int:
    """Verify deep; then run every env left in the store. Returns the number of envs run."""
    store = open_store(url)
    result = store.verify(deep=True)
    assert result.ok and result.damage == (), result.damage
    envs = store.env_ids()
    for env_id in envs:
        view = prepare(store.env_uri(env_id), cache_dir=tmp_path / "node-cache")
        out = subprocess.run(
            [os.path.join(view.path, "bin", "python"), "-c",
             "import dep, mylib; print(dep.D, mylib.VALUE)"],
            capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    return len(envs)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def churn_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return str(request.getfixturevalue("s3_url"))


def test_concurrent_ships_and_gcs(churn_url: str, tmp_path: Path) -> None:
    spec = specs(tmp_path / "blobs")
    settle = "0.5"
    # One env is tagged, as a team's `prod` would be: it survives every gc, and its blobs are
    # the ones shared with the churning envs.
    first = json.loads(spec.read_text())[0]
    store = open_store(churn_url)
    tagged = store.publish(Manifest.from_dict(first["manifest"]),
                           {k: Path(v) for k, v in first["blobs"].items()}).env_id
    store.set_tag("prod", tagged)
    ships = [start("ship", str(spec), churn_url, "12", settle, str(seed)) for seed in range(3)]
    # The gcs run at least 6 rounds each and go on as long as the ships do (a loaded machine
    # can start them late or run them fast), then one round more once the ships are done.
    stop = tmp_path / "ships-done"
    gcs = [start("gc", churn_url, "6", settle, str(stop)) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in ships]
    stop.touch()
    outs += [p.communicate(timeout=600) for p in gcs]
    for proc, (_, err) in zip(ships + gcs, outs, strict=True):
        assert proc.returncode == 0, err
    done = [r for out, _ in outs for r in records(out)]
    ship_ops = [r for r in done if r["op"] == "ship"]
    gc_ops = [r for r in done if r["op"] == "gc"]
    met = sum(bool(r["met"]) or bool(r["slow"]) for r in ship_ops)
    spared = sum(int(r["spared"]) for r in gc_ops)  # type: ignore[call-overload]
    removed = sum(int(r["blobs"]) for r in gc_ops)  # type: ignore[call-overload]
    reused = sum(int(r["reused"]) for r in ship_ops)  # type: ignore[call-overload]
    ran = check_store(churn_url, tmp_path)
    print(f"churn: {len(ship_ops)} ships ({reused} blob re-uses), {len(gc_ops)} gcs "
          f"({removed} blobs removed), overlaps: {met} ships met a sweep, {spared} "
          f"blobs/envs spared by a second look; damage 0; {ran} surviving envs ran")
    assert len(ship_ops) == 36 and len(gc_ops) >= 12
    assert removed > 0 and reused > 0 and ran >= 1 and tagged in open_store(churn_url).env_ids()


def test_kill_9_of_ship_and_gc_at_random_points(churn_url: str, tmp_path: Path) -> None:
    spec = specs(tmp_path / "blobs")
    settle = "0.5"
    rng = random.Random(1234)
    kills = 0
    for i in range(6):
        # kills land in the first 1.8 s; a survivor's later rounds add time, not coverage
        ship = start("ship", str(spec), churn_url, "4", settle, str(i))
        gc = start("gc", churn_url, "2", settle)
        victims = [p for p in (ship, gc) if rng.random() < 0.75] or [ship]
        time.sleep(rng.uniform(0.1, 1.8))
        for proc in victims:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
        for proc in (ship, gc):
            proc.communicate(timeout=300)
            if proc not in victims:
                assert proc.returncode == 0, proc.stderr
        store = open_store(churn_url)
        result = store.verify()
        assert result.ok and result.damage == (), (i, result.damage)
    # Leftover leases and markers of killed processes do not stop the store from working.
    final = start("ship", str(spec), churn_url, "4", settle, "99")
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    ran = check_store(churn_url, tmp_path)
    print(f"kill -9: {kills} processes killed at random points; damage 0; {ran} envs ran")
    assert kills > 0
