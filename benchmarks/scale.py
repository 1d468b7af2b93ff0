"""Cluster model: store reads and start-up per job for N nodes, M jobs/day, K env versions.

`python -m benchmarks.scale [--results FILE]` prints the model fed by measured sizes and
start-up times; `--validate quick|full` also runs a small real cluster (separate node caches running
`envship exec` against a counting HTTP store) and prints model vs measured store reads.

Package churn (`--upgrades N`): N package upgrades / additions a day across the env variants,
each a new env version from then on. With one blob per distribution only the changed
distribution's blob (`--churn-mb`, default: the mean bytes a variant adds in the latest
bench_variants results) moves to the store and to the nodes; a whole-env tool moves the whole env.
The validation's versions include one package addition and one version change.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import CountingStore, fresh_dir, run, uv_bin
from .envship_steps import envship_bin, envship_ship
from .refenv import _make_venv, edit_code_at, reference_env

__all__ = ["Inputs", "main", "model"]

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Inputs:
    """Measured sizes (bytes) and times (seconds) the model starts from."""

    deps: float
    code: float
    venv_pack: float
    pex: float
    cold_envship: float  # envship exec into an empty node cache (fetch from a local store)
    warm_envship: float  # envship exec overhead once cached
    cold_venv_pack: float  # tar xzf of the venv-pack archive + python start
    cold_pex: float  # first run of the PEX (extracts into PEX_ROOT)


def _figure(data: dict[str, Any], step: str, tool: str) -> float | None:
    for fig in reversed(data["figures"]):
        if fig["step"] == step and fig["tool"] == tool and isinstance(fig["value"], (int, float)):
            return float(fig["value"])
    return None


def load_inputs(path: Path) -> Inputs:
    """Read the figures the model needs from a results JSON written by `python -m benchmarks`."""
    data = json.loads(path.read_text())
    f = functools.partial(_figure, data)
    deps = f("size: dist layer", "envship") or f("size: deps layer", "envship")  # schema 2 / 1
    code = f("size: code layer", "envship")
    if deps is None or code is None:
        raise SystemExit(f"{path}: no envship layer sizes (run `python -m benchmarks` first)")
    vp = f("size: total", "venv-pack") or deps + code
    warm = f("node warm overhead vs bare python", "envship")
    return Inputs(
        deps=deps, code=code, venv_pack=vp, pex=f("size: total", "cluster-pack") or vp,
        cold_envship=f("node cold start", "envship") or 0.0,
        warm_envship=(warm or 0.0) / 1000,
        cold_venv_pack=f("node cold start", "venv-pack") or 0.0,
        cold_pex=f("node cold start", "cluster-pack") or 0.0,
    )


def _touch(p_one: float, tries: float) -> float:
    """Probability that a node is used at least once in *tries* independent draws."""
    return 1.0 - (1.0 - p_one) ** tries


def _churn_touches(p_one: float, jobs: int, upgrades: int) -> list[float]:
    """Touch probability of each of *upgrades* new blobs spread evenly over the day: the i-th
    (1-based) arrives after jobs * i / (upgrades + 1) jobs and is used by every later job."""
    return [_touch(p_one, jobs * (upgrades + 1 - i) / (upgrades + 1))
            for i in range(1, upgrades + 1)]


def model(inp: Inputs, nodes: int, jobs: int, versions: int, containers: int,
          deps_versions: int, bandwidth: float, upgrades: int = 0,
          churn: float = 0.0) -> dict[str, dict[str, float]]:
    """Expected store bytes read and written per day and start-up seconds per container.

    Each job runs `containers` containers on distinct random nodes; the day's jobs are spread
    evenly over `versions` env versions (code edits) and `deps_versions` dependency sets.
    `upgrades` package upgrades / additions a day (evenly spread, each kept for the rest of the
    day) each add one distribution blob of `churn` bytes for envship; for a whole-env tool each
    is one more env version (`versions + upgrades` in all) that moves the whole env.
    """
    c = min(containers, nodes)
    p = c / nodes
    touch_code = _touch(p, jobs / versions)  # a node runs a given env version at least once
    touch_deps = _touch(p, jobs / deps_versions)
    code_cold = touch_code * nodes * versions / (jobs * c)  # share of containers cold on code
    deps_cold = touch_deps * nodes * deps_versions / (jobs * c)
    churn_touch = sum(_churn_touches(p, jobs, upgrades))  # expected node fetches per blob, summed
    churn_cold = churn_touch * nodes / (jobs * c)
    share = inp.deps / (inp.deps + inp.code)
    envship_start = (inp.warm_envship
                     + deps_cold * (inp.deps / bandwidth + inp.cold_envship * share)
                     + code_cold * (inp.code / bandwidth + inp.cold_envship * (1 - share))
                     + churn_cold * (churn / bandwidth
                                     + inp.cold_envship * churn / (inp.deps + inp.code)))
    env_versions = versions + upgrades  # what a whole-env tool sees: every change is a new env
    touch_env = _touch(p, jobs / env_versions)
    env_cold = touch_env * nodes * env_versions / (jobs * c)
    return {
        "envship (layers + node cache)": {
            "store_bytes_per_day": nodes * (deps_versions * touch_deps * inp.deps
                                            + versions * touch_code * inp.code
                                            + churn_touch * churn),
            "store_writes_per_day": (deps_versions * inp.deps + versions * inp.code
                                     + upgrades * churn),
            "startup_s_per_container": envship_start,
        },
        "Spark archives per application (venv-pack)": {
            "store_bytes_per_day": jobs * c * inp.venv_pack,
            "store_writes_per_day": jobs * inp.venv_pack,
            "startup_s_per_container": inp.venv_pack / bandwidth + inp.cold_venv_pack,
        },
        "cluster-pack PEX per container": {
            "store_bytes_per_day": jobs * containers * inp.pex,
            "store_writes_per_day": env_versions * inp.pex,
            "startup_s_per_container": inp.pex / bandwidth + inp.cold_pex,
        },
        "Ray-style per-node zip cache": {
            "store_bytes_per_day": nodes * env_versions * touch_env * inp.venv_pack,
            "store_writes_per_day": env_versions * inp.venv_pack,
            "startup_s_per_container": env_cold * (inp.venv_pack / bandwidth
                                                   + inp.cold_venv_pack),
        },
    }


# Version changes the validation makes besides code edits: (what, requirement) per profile.
CHURN: dict[str, tuple[tuple[str, str], ...]] = {
    "quick": (("add", "idna==3.20"), ("version", "attrs==25.4.0")),
    "full": (("add", "attrs==26.1.0"), ("version", "pandas==3.0.6")),
}


def _changes(profile: str, versions: int) -> list[tuple[str, str]]:
    """What version v (v >= 1) changes over v - 1: a code edit, then the profile's package
    addition and version change, then code edits again."""
    steps = [("code", ""), *CHURN[profile]]
    return [steps[v - 1] if v - 1 < len(steps) else ("code", "") for v in range(1, versions)]


def validate(profile: str, nodes: int, jobs: int, versions: int, containers: int,
             seed: int = 7) -> dict[str, Any]:
    """Real small cluster: `nodes` node caches, `jobs` jobs on `containers` random nodes each.

    The `versions` env versions are shipped from a venv of the profile's packages with its own
    copy of the editable project (the reference env and its project stay as they are); each
    differs from the previous by one change: a code edit, a package addition, a package version
    change (see CHURN)."""
    env = reference_env(profile)
    work = fresh_dir(env.root / "scale")
    home, store, venv = work / "home", work / "store", work / "venv"
    # Its own copy of the editable project: editing the reference's would change what another
    # benchmark run on the reference env (sharing $ENVSHIP_BENCH_DIR) ships meanwhile.
    project = work / "project" / env.project.name
    shutil.copytree(env.project, project, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    _make_venv(venv, env.packages, ["-e", str(project)])
    python = venv / "bin" / "python"
    changes = [("base", ""), *_changes(profile, versions)]
    ids, layers_of, sizes = [], [], {}
    code_value = 1000
    for what, req in changes:
        if what == "code":
            code_value += 1
        elif what in ("add", "version"):
            run([uv_bin(), "pip", "install", "-q", "-p", str(python), req])
        edit_code_at(project, code_value)
        _, info = envship_ship(python, store, home)
        ids.append(info["env_id"])
        layers_of.append({str(x["digest"]): int(x["size"]) for x in info["layers"]})
        for layer in info["layers"]:
            sizes[layer["digest"]] = (layer["kind"], int(layer["size"]))
    rng = random.Random(seed)
    seen: dict[int, set[str]] = {n: set() for n in range(nodes)}
    seen_env: dict[int, set[str]] = {n: set() for n in range(nodes)}
    predicted = whole_env_node = whole_env_container = 0
    jobs_of = [0] * versions
    starts: list[float] = []
    with CountingStore(store) as server:
        for j in range(jobs):
            v = j * versions // jobs
            jobs_of[v] += 1
            env_id = ids[v]
            for n in rng.sample(range(nodes), min(containers, nodes)):
                for digest, size in layers_of[v].items():
                    if digest not in seen[n]:
                        seen[n].add(digest)
                        predicted += size
                env_bytes = sum(layers_of[v].values())
                whole_env_container += env_bytes
                if env_id not in seen_env[n]:
                    seen_env[n].add(env_id)
                    whole_env_node += env_bytes
                start = time.perf_counter()
                run([envship_bin(), "exec", f"{server.url}/envs/{env_id}.json", "--", "python",
                     "-c", "pass"], env={"ENVSHIP_CACHE": str(work / f"node{n}")})
                starts.append(time.perf_counter() - start)
        measured = server.snapshot()
    # Analytic, per blob: a node holds blob b once it ran any of the J_b jobs whose env has b.
    p = min(containers, nodes) / nodes
    per_blob = 0.0
    for digest, (_kind, size) in sizes.items():
        used = sum(jobs_of[v] for v in range(versions) if digest in layers_of[v])
        per_blob += nodes * size * _touch(p, used)
    # The cluster model's inputs from this run: the base env's dist blobs used all day, the
    # code layers, and each package change's new blobs as one churn event.
    base_deps = sum(s for d, s in layers_of[0].items() if sizes[d][0] in ("dist", "deps"))
    code = [size for kind, size in sizes.values() if kind == "code"]
    events = [v for v, (what, _req) in enumerate(changes) if what in ("add", "version")]
    event_bytes = [sum(s for d, s in layers_of[v].items()
                       if sizes[d][0] != "code" and d not in layers_of[v - 1]) for v in events]
    churn = sum(event_bytes) / len(event_bytes) if event_bytes else 0.0
    code_versions = len(code)
    analytic = model(Inputs(deps=base_deps, code=sum(code) / len(code),
                            venv_pack=sum(layers_of[0].values()), pex=0, cold_envship=0,
                            warm_envship=0, cold_venv_pack=0, cold_pex=0),
                     nodes, jobs, code_versions, containers, 1, 1.0,
                     upgrades=len(events), churn=churn)
    return {
        "blob_bytes_analytic": round(per_blob),
        "blob_bytes_cluster_model": round(
            analytic["envship (layers + node cache)"]["store_bytes_per_day"]),
        "profile": profile, "nodes": nodes, "jobs": jobs, "versions": versions,
        "containers": containers, "blob_bytes_model": predicted,
        "changes": [f"{what} {req}".strip() for what, req in changes],
        "churn_event_bytes": event_bytes,
        "blob_bytes_measured": measured.get("blobs", 0),
        "blob_requests": measured.get("blobs_requests", 0),
        "other_bytes_measured": measured.get("other", 0),
        "other_requests": measured.get("other_requests", 0),
        "whole_env_per_node_cache_bytes": whole_env_node,
        "whole_env_per_node_cache_model": round(
            analytic["Ray-style per-node zip cache"]["store_bytes_per_day"]),
        "whole_env_per_container_bytes": whole_env_container,
        "mean_start_s": sum(starts) / len(starts), "execs": len(starts),
    }


def latest_variants_churn(directory: Path = RESULTS_DIR) -> tuple[float, str] | None:
    """Mean bytes a package-changing variant adds to a node holding the envs before it (latest
    bench_variants results; the code-edit variant is left out)."""
    runs = sorted(directory.glob("bench_variants-*.json"), reverse=True)
    for path in runs:
        try:
            rows = json.loads(path.read_text())["context"]["variants"][1:]
            added = [int(r["node_new_blob_bytes"]) for r in rows
                     if r.get("package_change", "code" not in r.get("change", ""))]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if added:
            return sum(added) / len(added), path.name
    return None


def _has_inputs(path: Path) -> bool:
    try:
        load_inputs(path)
    except (SystemExit, ValueError, KeyError, OSError):
        return False
    return True


def latest_results(directory: Path = RESULTS_DIR) -> Path | None:
    """The newest results JSON (quick or full run) that holds the figures the model needs;
    a run of only some benchmarks (e.g. `--only spark`) is passed over."""
    runs = [p for p in directory.glob("*-*.json") if p.name.startswith(("full-", "quick-"))]
    runs.sort(key=lambda p: p.stem.split("-", 1)[1], reverse=True)  # by timestamp, newest first
    return next((p for p in runs if _has_inputs(p)), None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    p.add_argument("--results", type=Path, default=None, help="results JSON (default: latest)")
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--jobs-per-day", type=int, default=500)
    p.add_argument("--versions", type=int, default=20, help="env versions (code edits) per day")
    p.add_argument("--deps-versions", type=int, default=1, help="dependency sets per day")
    p.add_argument("--containers", type=int, default=20, help="containers per job")
    p.add_argument("--bandwidth", type=float, default=200.0, help="store MB/s per node")
    p.add_argument("--upgrades", type=int, default=0,
                   help="package upgrades / additions per day across the env variants")
    p.add_argument("--churn-mb", type=float, default=None,
                   help="MB of distribution blobs one upgrade / addition moves (default: mean "
                        "from the latest bench_variants results, else 10)")
    p.add_argument("--validate", choices=("quick", "full"), default=None,
                   help="also run the small real cluster with this reference env")
    p.add_argument("--v-nodes", type=int, default=8)
    p.add_argument("--v-jobs", type=int, default=20)
    p.add_argument("--v-versions", type=int, default=4)
    p.add_argument("--v-containers", type=int, default=3)
    args = p.parse_args(argv)
    path = args.results or latest_results()
    if path is None:
        print("no results JSON with envship layer sizes: run `python -m benchmarks` first",
              file=sys.stderr)
        return 2
    inp = load_inputs(path)
    churn_src = "--churn-mb"
    if args.churn_mb is not None:
        churn = args.churn_mb * 1e6
    else:
        found = latest_variants_churn()
        churn, churn_src = found if found else (10e6, "default 10 MB")
    out: dict[str, Any] = {"inputs": inp.__dict__, "source": str(path), "params": {
        k: getattr(args, k) for k in ("nodes", "jobs_per_day", "versions", "deps_versions",
                                      "containers", "bandwidth", "upgrades")}}
    out["params"]["churn_bytes"] = churn
    out["params"]["churn_source"] = churn_src
    out["model"] = model(inp, args.nodes, args.jobs_per_day, args.versions, args.containers,
                         args.deps_versions, args.bandwidth * 1e6, args.upgrades, churn)
    print(f"model ({path.name}): {args.nodes} nodes, {args.jobs_per_day} jobs/day, "
          f"{args.versions} versions/day, {args.upgrades} package upgrades/day, "
          f"{args.containers} containers/job, {args.bandwidth:g} MB/s per node")
    print("| approach | store reads per day | store writes per day | start-up per container |"
          "\n|---|---|---|---|")
    for name, row in out["model"].items():
        print(f"| {name} | {row['store_bytes_per_day'] / 1e9:.3g} GB | "
              f"{row['store_writes_per_day'] / 1e9:.3g} GB | "
              f"{row['startup_s_per_container']:.3g} s |")
    print(f"\npackage churn ({churn / 1e6:.3g} MB of blobs per upgrade / addition, from "
          f"{churn_src}); store reads per day (writes):")
    print("| upgrades/day | envship | Ray-style per-node zip cache | Spark archives |"
          "\n|---|---|---|---|")
    out["churn"] = {}
    for ups in (0, 5, 20, 50):
        m = model(inp, args.nodes, args.jobs_per_day, args.versions, args.containers,
                  args.deps_versions, args.bandwidth * 1e6, ups, churn)
        out["churn"][str(ups)] = m
        cells = [f"{m[k]['store_bytes_per_day'] / 1e9:.3g} GB "
                 f"({m[k]['store_writes_per_day'] / 1e9:.3g} GB)"
                 for k in ("envship (layers + node cache)", "Ray-style per-node zip cache",
                           "Spark archives per application (venv-pack)")]
        print(f"| {ups} | " + " | ".join(cells) + " |")
    if args.validate:
        out["loadavg_start"] = list(os.getloadavg())
        v = validate(args.validate, args.v_nodes, args.v_jobs,
                     args.v_versions, args.v_containers)
        out["validation"] = v
        ratio = v["blob_bytes_measured"] / v["blob_bytes_model"] if v["blob_bytes_model"] else 0
        print(f"\nvalidation ({v['profile']} env, {v['nodes']} node caches x {v['jobs']} jobs, "
              f"{v['versions']} versions, {v['containers']} containers/job, {v['execs']} execs):")
        print(f"  versions: {'; '.join(v['changes'])} (package changes add "
              f"{v['churn_event_bytes']} B of blobs)")
        print(f"  blob bytes read from the store: schedule model {v['blob_bytes_model']}, "
              f"analytic model {v['blob_bytes_analytic']}, cluster model "
              f"{v['blob_bytes_cluster_model']}, measured "
              f"{v['blob_bytes_measured']} (measured/schedule model {ratio:.3f}); blob GETs "
              f"{v['blob_requests']}; other GETs {v['other_requests']} "
              f"({v['other_bytes_measured']} B); mean exec {v['mean_start_s']:.3f} s")
        print(f"  a whole-env per-node cache would read {v['whole_env_per_node_cache_bytes']} B "
              f"(cluster model {v['whole_env_per_node_cache_model']}); one archive per "
              f"container {v['whole_env_per_container_bytes']} B")
    if args.validate:
        out["loadavg_end"] = list(os.getloadavg())
        print(f"  load average: start {out['loadavg_start']}, end {out['loadavg_end']}")
    dest = RESULTS_DIR / f"scale-{path.stem}.json"
    dest.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"results: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
