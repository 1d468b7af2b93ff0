"""Pack once per team: the first machine's cold ship, a second machine's (empty build cache,
the store already holding the packages), and pip vs uv installs of the same wheels.

    .venv/bin/python -m benchmarks.bench_team_cache [--runs 3] [--profile full]

Each round, interleaved: (1) `envship ship --python REF STORE` with an empty `ENVSHIP_HOME`
into an empty store (the first machine); (2) the same with another empty `ENVSHIP_HOME` into
that store (a CI runner or a colleague: the store's team build cache serves the packages);
(3) as (2) with `--no-store-cache` (every layer built again, nothing uploaded). Wall clock,
CPU of the process and its children, bytes sent, store growth, env ids. envship runs
byte-compiled with PYTHONDONTWRITEBYTECODE unset, as an installed CLI runs.

Then the reference packages are installed into a venv by pip (which writes INSTALLER=pip and
its own pycs) and packed: the dist blobs are compared with those of the uv-installed REF.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from .common import Results, bench_context, dir_bytes, finish, fresh_dir, run, work_dir
from .envship_steps import envship_bin
from .refenv import PROFILES, pip_installed, reference_env

__all__ = ["main"]

NAME = "bench_team_cache"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["ENVSHIP_HOME"] = str(home)
    return env


def _ship(python: Path, home: Path, store: Path, *extra: str) -> dict[str, object]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = run([envship_bin(), "ship", str(store), "--python", str(python), "--json", "-q",
               *extra], env=_env(home)).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = json.loads(out)
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime)
            + (after.ru_stime - before.ru_stime),
            "sent": int(data["bytes_sent"]), "env_id": str(data["env_id"]),
            "built": sum(1 for lay in data["layers"] if lay.get("built"))}


def _dist_blobs(python: Path, home: Path, out: Path) -> dict[str, str]:
    run([envship_bin(), "pack", "--python", str(python), "-o", str(out), "-q", "--json"],
        env=_env(home))
    manifest = json.loads(next((out / "envs").glob("*.json")).read_bytes())
    layers = {lay["digest"]: lay for lay in manifest["layers"]}
    return {d["name"]: d["layer"] for d in manifest["distributions"]
            if layers[d["layer"]]["kind"] == "dist"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_team_cache")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", default="full", choices=sorted(PROFILES))
    args = p.parse_args(argv)
    results = Results(context=bench_context(NAME))
    env = reference_env(args.profile)
    results.context.update(profile=args.profile, runs=args.runs, reference_env=str(env.venv))
    scratch = work_dir() / "team-cache-scratch"
    rows: dict[str, list[dict[str, object]]] = {"first machine": [], "second machine": [],
                                                 "second machine, --no-store-cache": []}
    growth: list[int] = []
    for r in range(args.runs):
        store = fresh_dir(scratch / "store")
        rows["first machine"].append(_ship(env.python, fresh_dir(scratch / "a"), store))
        size = dir_bytes(store)
        rows["second machine"].append(_ship(env.python, fresh_dir(scratch / "b"), store))
        growth.append(dir_bytes(store) - size)
        rows["second machine, --no-store-cache"].append(
            _ship(env.python, fresh_dir(scratch / "c"), store, "--no-store-cache"))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]['wall']:.2f} s"
                                              for k, v in rows.items())
              + f", load {os.getloadavg()[0]:.1f}", flush=True)
    table = ["| ship | wall (median) | CPU | bytes sent | layers built | env id |",
             "|---|---|---|---|---|---|"]
    walls = {}
    for name, samples in rows.items():
        walls[name] = results.add_time(f"ship: {name}", "envship",
                                       [float(str(s["wall"])) for s in samples])
        cpu = sorted(float(str(s["cpu"])) for s in samples)[len(samples) // 2]
        ids = {s["env_id"] for s in samples}
        table.append(f"| {name} | {walls[name]:.2f} s | {cpu:.2f} s | "
                     f"{max(int(str(s['sent'])) for s in samples):,} | "
                     f"{max(int(str(s['built'])) for s in samples)} | "
                     f"{'same' if len(ids) == 1 else 'DIFFERENT'} |")
    ratio = walls["second machine"] / walls["first machine"]
    results.add("ratio second / first machine", "envship", round(ratio, 3), "x", "wall")
    results.add("store growth, second machine", "envship", max(growth), "bytes", "")
    table.append(f"\nsecond / first machine: **{ratio:.2f}x**; store growth on the second "
                 f"ship: {max(growth):,} bytes (max of {args.runs})")
    uv_blobs = _dist_blobs(env.python, fresh_dir(scratch / "uv-home"),
                           fresh_dir(scratch / "uv-out"))
    pip_blobs = _dist_blobs(pip_installed(env).python, fresh_dir(scratch / "pip-home"),
                            fresh_dir(scratch / "pip-out"))
    common = sorted(set(uv_blobs) & set(pip_blobs))
    same = [n for n in common if uv_blobs[n] == pip_blobs[n]]
    results.add("pip vs uv: identical dist blobs", "envship", len(same), "count",
                f"of {len(common)} distributions in both")
    table.append(f"pip-installed vs uv-installed reference packages: {len(same)} of "
                 f"{len(common)} dist blobs identical; only in one: "
                 f"{sorted(set(uv_blobs) ^ set(pip_blobs))}")
    return finish(NAME, results, "\n".join(table) + "\n")


if __name__ == "__main__":
    sys.exit(main())
