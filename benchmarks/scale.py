"""Cluster model: store reads and start-up per job for N nodes, M jobs/day, K env versions.

`python -m benchmarks.scale [--results FILE]` prints the model fed by measured sizes and
start-up times; `--validate quick|full` also runs a small real cluster (separate node caches running
`envship exec` against a counting HTTP store) and prints model vs measured store reads.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import fresh_dir, run
from .envship_steps import envship_bin, envship_ship
from .refenv import edit_code, reference_env

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


def model(inp: Inputs, nodes: int, jobs: int, versions: int, containers: int,
          deps_versions: int, bandwidth: float) -> dict[str, dict[str, float]]:
    """Expected store bytes read per day and start-up seconds per container, per approach.

    Each job runs `containers` containers on distinct random nodes; the day's jobs are spread
    evenly over `versions` env versions (code edits) and `deps_versions` dependency sets.
    """
    c = min(containers, nodes)
    p = c / nodes
    touch_code = _touch(p, jobs / versions)  # a node runs a given env version at least once
    touch_deps = _touch(p, jobs / deps_versions)
    code_cold = touch_code * nodes * versions / (jobs * c)  # share of containers cold on code
    deps_cold = touch_deps * nodes * deps_versions / (jobs * c)
    share = inp.deps / (inp.deps + inp.code)
    envship_start = (inp.warm_envship
                     + deps_cold * (inp.deps / bandwidth + inp.cold_envship * share)
                     + code_cold * (inp.code / bandwidth + inp.cold_envship * (1 - share)))
    return {
        "envship (layers + node cache)": {
            "store_bytes_per_day": nodes * (deps_versions * touch_deps * inp.deps
                                            + versions * touch_code * inp.code),
            "startup_s_per_container": envship_start,
        },
        "Spark archives per application (venv-pack)": {
            "store_bytes_per_day": jobs * c * inp.venv_pack,
            "startup_s_per_container": inp.venv_pack / bandwidth + inp.cold_venv_pack,
        },
        "cluster-pack PEX per container": {
            "store_bytes_per_day": jobs * containers * inp.pex,
            "startup_s_per_container": inp.pex / bandwidth + inp.cold_pex,
        },
        "Ray-style per-node zip cache": {
            "store_bytes_per_day": nodes * versions * touch_code * inp.venv_pack,
            "startup_s_per_container": code_cold * (inp.venv_pack / bandwidth
                                                    + inp.cold_venv_pack),
        },
    }


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def copyfile(self, source: Any, outputfile: Any) -> None:
        data = source.read()
        kind = "blobs" if "/blobs/" in self.path else "other"
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + len(data)
            self.counts[kind + "_requests"] = self.counts.get(kind + "_requests", 0) + 1
        outputfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def validate(profile: str, nodes: int, jobs: int, versions: int, containers: int,
             seed: int = 7) -> dict[str, Any]:
    """Real small cluster: `nodes` node caches, `jobs` jobs on `containers` random nodes each."""
    env = reference_env(profile)
    work = fresh_dir(env.root / "scale")
    home, store = work / "home", work / "store"
    ids, sizes = [], {}
    for v in range(versions):
        edit_code(env, 1000 + v)
        _, info = envship_ship(env.python, store, home)
        ids.append(info["env_id"])
        for layer in info["layers"]:
            sizes[layer["digest"]] = (layer["kind"], int(layer["size"]))
    edit_code(env, 0)
    handler = functools.partial(_CountingHandler, directory=str(store))
    _CountingHandler.counts = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    rng = random.Random(seed)
    seen: dict[int, set[str]] = {n: set() for n in range(nodes)}
    predicted = 0
    starts: list[float] = []
    try:
        for j in range(jobs):
            env_id = ids[j * versions // jobs]
            manifest = json.loads((store / "envs" / f"{env_id}.json").read_text())
            for n in rng.sample(range(nodes), min(containers, nodes)):
                for layer in manifest["layers"]:
                    if layer["digest"] not in seen[n]:
                        seen[n].add(layer["digest"])
                        predicted += int(layer["size"])
                start = time.perf_counter()
                run([envship_bin(), "exec", f"{url}/envs/{env_id}.json", "--", "python", "-c",
                     "pass"], env={"ENVSHIP_CACHE": str(work / f"node{n}")})
                starts.append(time.perf_counter() - start)
    finally:
        server.shutdown()
    measured = _CountingHandler.counts
    deps = [size for kind, size in sizes.values() if kind in ("dist", "deps")]
    code = [size for kind, size in sizes.values() if kind == "code"]
    analytic = model(Inputs(deps=sum(deps) / len(deps), code=sum(code) / len(code),
                            venv_pack=0, pex=0, cold_envship=0, warm_envship=0,
                            cold_venv_pack=0, cold_pex=0),
                     nodes, jobs, versions, containers, len(deps), 1.0)
    return {
        "blob_bytes_analytic": round(
            analytic["envship (layers + node cache)"]["store_bytes_per_day"]),
        "profile": profile, "nodes": nodes, "jobs": jobs, "versions": versions,
        "containers": containers, "blob_bytes_model": predicted,
        "blob_bytes_measured": measured.get("blobs", 0),
        "blob_requests": measured.get("blobs_requests", 0),
        "other_bytes_measured": measured.get("other", 0),
        "other_requests": measured.get("other_requests", 0),
        "mean_start_s": sum(starts) / len(starts), "execs": len(starts),
    }


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
    out: dict[str, Any] = {"inputs": inp.__dict__, "source": str(path), "params": {
        k: getattr(args, k) for k in ("nodes", "jobs_per_day", "versions", "deps_versions",
                                      "containers", "bandwidth")}}
    out["model"] = model(inp, args.nodes, args.jobs_per_day, args.versions, args.containers,
                         args.deps_versions, args.bandwidth * 1e6)
    print(f"model ({path.name}): {args.nodes} nodes, {args.jobs_per_day} jobs/day, "
          f"{args.versions} versions/day, {args.containers} containers/job, "
          f"{args.bandwidth:g} MB/s per node")
    print("| approach | store reads per day | start-up per container |\n|---|---|---|")
    for name, row in out["model"].items():
        print(f"| {name} | {row['store_bytes_per_day'] / 1e9:.3g} GB | "
              f"{row['startup_s_per_container']:.3g} s |")
    if args.validate:
        v = validate(args.validate, args.v_nodes, args.v_jobs,
                     args.v_versions, args.v_containers)
        out["validation"] = v
        ratio = v["blob_bytes_measured"] / v["blob_bytes_model"] if v["blob_bytes_model"] else 0
        print(f"\nvalidation ({v['profile']} env, {v['nodes']} node caches x {v['jobs']} jobs, "
              f"{v['versions']} versions, {v['containers']} containers/job, {v['execs']} execs):")
        print(f"  blob bytes read from the store: schedule model {v['blob_bytes_model']}, "
              f"analytic model {v['blob_bytes_analytic']}, measured "
              f"{v['blob_bytes_measured']} (measured/schedule model {ratio:.3f}); blob GETs "
              f"{v['blob_requests']}; other GETs {v['other_requests']} "
              f"({v['other_bytes_measured']} B); mean exec {v['mean_start_s']:.3f} s")
    dest = RESULTS_DIR / f"scale-{path.stem}.json"
    dest.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"results: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
