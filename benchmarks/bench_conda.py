"""Conda envs against conda-pack: pack time, blob bytes, node cold and warm start, sharing.

    .venv/bin/python -m benchmarks.bench_conda [--runs 3]

Builds the test suite's conda channel (tests/kits/condakit.py: a python package repackaged
from this CPython, libfoo, pyfoo, noarch foocli) and installs it with py-rattler into two
prefixes of different lengths (+ a wheel with uv pip), then measures (medians, wall clock and
CPU of the process and its children):
- pack: `envship pack` with an empty build cache (bytecode the packages carry reused, the rest
  compiled; and with no compiler, to say how much of the time compiling is) against
  `conda-pack` of the same prefix;
- bytes: the env's blobs against conda-pack's tarball;
- sharing: what a node that has env A fetches more for the same packages at prefix B;
- node cold: `envship exec ENV -- python -c pass` on an empty node cache against
  `tar xzf` + `conda-unpack` + `python -c pass` of conda-pack's tarball, at a new path;
- node warm: `envship exec` again against the view's own `bin/python -c pass`.
Writes benchmarks/results/conda-<UTC>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).parent / "results"


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) of one call."""
    before = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    after = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime
              for a, b in zip(after, before, strict=True))
    return wall, cpu


def _median(runs: list[tuple[float, float]]) -> dict[str, float]:
    return {"wall_s": round(statistics.median(r[0] for r in runs), 3),
            "cpu_s": round(statistics.median(r[1] for r in runs), 3)}


def _run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   **kw)  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_conda", description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    from kits.condakit import build_channel, can_build, install_env

    why = can_build()
    if why:
        print(f"bench_conda: {why}", file=sys.stderr)
        return 2
    import logging

    import envship.packing.pipeline as pipeline

    logging.getLogger("envship").setLevel(logging.ERROR)  # the kit's stray CACHEDIR.TAG

    work = Path(tempfile.mkdtemp(prefix="bench-conda-"))
    try:
        kit = build_channel(work / "kit")
        a = work / "envs" / "a"
        b = work / "envs" / "a-longer-prefix" / "b"
        for prefix in (a, b):
            install_env(kit, prefix, work / "pkgs")
        out: dict[str, object] = {}

        def envship_pack(prefix: Path, cache: Path, bytecode: bool = True) -> object:
            shutil.rmtree(cache, ignore_errors=True)
            saved = pipeline.compiler_for
            if not bytecode:
                pipeline.compiler_for = lambda *_: None  # type: ignore[assignment]
            try:
                return pipeline.pack(prefix / "bin" / "python", cache_dir=cache)
            finally:
                pipeline.compiler_for = saved

        def conda_pack(prefix: Path, dest: Path) -> None:
            dest.unlink(missing_ok=True)
            _run([str(BIN / "conda-pack"), "-p", str(prefix), "-o", str(dest), "--quiet"])

        tarball = work / "a.tar.gz"
        pack_runs = {"envship": [], "envship_no_compiler": [], "conda_pack": []}  # type: ignore[var-annotated]
        for _ in range(args.runs):
            pack_runs["envship"].append(_timed(lambda: envship_pack(a, work / "bc")))
            pack_runs["envship_no_compiler"].append(
                _timed(lambda: envship_pack(a, work / "bc0", False)))
            pack_runs["conda_pack"].append(_timed(lambda: conda_pack(a, tarball)))
        out["pack"] = {k: _median(v) for k, v in pack_runs.items()}

        store = work / "store"
        import envship

        ra = envship.pack(a / "bin" / "python", cache_dir=work / "bc", output=store)
        rb = envship.pack(b / "bin" / "python", cache_dir=work / "bc", output=store)
        nobc = envship_pack(a, work / "bc0", False)
        blob_bytes = sum(lay.size for lay in ra.manifest.layers)
        out["bytes"] = {
            "envship_blobs": blob_bytes,
            "envship_blobs_no_bytecode": sum(lay.size for lay in nobc.manifest.layers),  # type: ignore[attr-defined]
            "conda_pack_tarball": tarball.stat().st_size,
            "ratio": round(blob_bytes / tarball.stat().st_size, 2),
        }
        have = {lay.digest for lay in ra.manifest.layers}
        out["other_prefix_extra_bytes"] = sum(lay.size for lay in rb.manifest.layers
                                              if lay.digest not in have)
        for prefix in (a, b):  # nothing may come from the source envs from here on
            prefix.rename(prefix.with_name(prefix.name + "-moved"))
        ref = str(store / "envs" / f"{ra.env_id}.json")
        cold: list[tuple[float, float]] = []
        unpack: list[tuple[float, float]] = []
        view = ""
        for i in range(args.runs):
            cache = work / f"node-{i}"
            env = dict(os.environ, ENVSHIP_CACHE=str(cache))
            cold.append(_timed(lambda env=env: _run(  # type: ignore[misc]
                [str(BIN / "envship"), "exec", ref, "--", "python", "-c", "pass"], env=env)))
            view = str(next((cache / "envs").iterdir()))
            dest = work / f"unpacked-{i}" / "somewhere" / "env"

            def untar(dest: Path = dest) -> None:
                dest.mkdir(parents=True)
                _run(["tar", "xzf", str(tarball), "-C", str(dest)])
                _run([str(dest / "bin" / "conda-unpack")])
                _run([str(dest / "bin" / "python"), "-c", "pass"])

            unpack.append(_timed(untar))
        out["node_cold"] = {"envship_exec": _median(cold), "tar_conda_unpack": _median(unpack)}
        env = dict(os.environ, ENVSHIP_CACHE=str(work / "node-0"))
        warm = [_timed(lambda: _run([str(BIN / "envship"), "exec", ref, "--", "python", "-c",
                                     "pass"], env=env)) for _ in range(max(5, args.runs))]
        own = [_timed(lambda: _run([f"{view}/bin/python", "-c", "pass"]))
               for _ in range(max(5, args.runs))]
        out["node_warm"] = {"envship_exec": _median(warm), "view_python": _median(own)}
        out["machine"] = {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}
        print(json.dumps(out, indent=1))
        RESULTS.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        (RESULTS / f"conda-{stamp}.json").write_text(json.dumps(out, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
