"""Conda envs against conda-pack: pack time, blob bytes, node cold and warm start, sharing.

    .venv/bin/python -m compileall -q src .venv/lib     # real installs are byte-compiled
    .venv/bin/python -m benchmarks.bench_conda [--runs 3] [--warm-runs 41] [--warm-only]

Builds the test suite's conda channel (tests/kits/condakit.py: a python package repackaged
from this CPython, libfoo with an activate.d script, pyfoo, noarch foocli) and installs it with
py-rattler into two prefixes of different lengths (+ a wheel with uv pip), then measures
(medians, wall clock and CPU of the process and its children):
- pack: `envship pack` with an empty build cache (bytecode the packages carry reused, the rest
  compiled; and with no compiler, to say how much of the time compiling is) against
  `conda-pack` of the same prefix;
- bytes: the env's blobs against conda-pack's tarball;
- sharing: what a node that has env A fetches more for the same packages at prefix B;
- node cold: `envship exec ENV -- python -c pass` on an empty node cache against
  `tar xzf` + `conda-unpack` + `python -c pass` of conda-pack's tarball, at a new path;
- node warm: `envship exec ENV -- python -c pass` against the view's own `bin/python -c pass`,
  and what a conda-pack user runs (the unpacked env's `bin/python`, and with conda-pack's
  `bin/activate` sourced first). Every command runs --warm-runs times, interleaved (one of
  each per round, so load changes hit all alike), without PYTHONDONTWRITEBYTECODE (it makes
  envship, an installed package, recompile itself on every start); the result says whether
  envship's modules had bytecode. The overhead is split into (a) the launcher interpreter's
  own start-up (`python -c pass` with the interpreter of the `envship` script), (b) envship's
  in-process work (timed inside the process, from its first import to the exec call), of
  which (c) sourcing the activate.d scripts, and (d) the rest (exec and noise).
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


# Times envship's in-process part of a warm start: from its first import to the exec call
# (which is replaced by a report), and the activation inside it. Run as `python -c`.
_IN_PROCESS = """
import os, sys, time
start = time.perf_counter()
spent = [0.0]
def execve(exe, argv, env):
    total = time.perf_counter() - start
    sys.stdout.write("%r %r\\n" % (total, spent[0]))
    sys.stdout.flush()
    os._exit(0)
os.execve = execve
import envship.node.activation as activation
real = activation.activate
def timed(*args):
    t = time.perf_counter()
    try:
        return real(*args)
    finally:
        spent[0] += time.perf_counter() - t
activation.activate = timed
sys.argv = ["envship", "exec", *sys.argv[1:]]
from envship._entry import main
main()
"""


def _wall_and_cpu(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of *cmd*, its CPU from wait4's usage."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def _interpreter_of(script: Path) -> str:
    """The interpreter a console script's ``#!`` line names."""
    with open(script, "rb") as fh:
        return fh.readline()[2:].decode().strip().split()[0]


def _byte_compiled(python: str) -> bool:
    """Does envship, as *python* imports it, have bytecode for its warm-path modules?"""
    code = ("import importlib.util as u, os, envship.node.__main__ as m, envship.node.activation"
            " as a; print(all(os.path.exists(u.cache_from_source(x.__file__)) for x in (m, a)))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def _warm(ref: str, cache: Path, unpacked: Path, runs: int) -> dict[str, object]:
    """Warm start, interleaved rounds; medians in ms (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["ENVSHIP_CACHE"] = str(cache)
    launcher = _interpreter_of(BIN / "envship")
    view = str(next((cache / "envs").iterdir()))
    scripts = sorted(str(p) for p in Path(view, "etc", "conda", "activate.d").glob("*.sh"))
    commands = {
        "envship_exec": [str(BIN / "envship"), "exec", ref, "--", "python", "-c", "pass"],
        "view_python": [f"{view}/bin/python", "-c", "pass"],
        "launcher_python": [launcher, "-c", "pass"],
        "launcher_python_isolated": [launcher, "-I", "-S", "-c", "pass"],
        "activation_shell": ["/bin/sh", "-c", 'for f do . "$f"; done; exec env -0', "sh",
                             *scripts],
        "conda_pack_python": [str(unpacked / "bin" / "python"), "-c", "pass"],
    }
    if (unpacked / "bin" / "activate").exists():  # conda-pack's; it wants bash, zsh or ksh
        commands["conda_pack_activate"] = [
            "bash", "-c", f'. "{unpacked}/bin/activate" && exec python -c pass']
    in_process = [launcher, "-c", _IN_PROCESS, ref, "--", "python", "-c", "pass"]
    subprocess.run(commands["envship_exec"], env=env, check=True)  # bytecode of a first run
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    inner: list[tuple[float, float]] = []
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(_wall_and_cpu(cmd, env))
        got = subprocess.run(in_process, env=env, check=True, capture_output=True, text=True)
        total, activation = got.stdout.split()
        inner.append((float(total), float(activation)))
    ms = {k: round(statistics.median(w for w, _ in v) * 1000, 1) for k, v in times.items()}
    cpu_ms = {k: round(statistics.median(c for _, c in v) * 1000, 1) for k, v in times.items()}
    work = round(statistics.median(t - a for t, a in inner) * 1000, 1)
    activation_ms = round(statistics.median(a for _, a in inner) * 1000, 1)
    overhead = round(ms["envship_exec"] - ms["view_python"], 1)
    return {
        "ms": ms,
        "cpu_ms": cpu_ms,  # of the process and what it waited for: steadier under load
        "overhead_ms": overhead,
        "overhead_cpu_ms": round(cpu_ms["envship_exec"] - cpu_ms["view_python"], 1),
        "split_ms": {"a_launcher_start": ms["launcher_python"], "b_in_process": work,
                     "c_activation": activation_ms,
                     "d_exec_and_noise": round(overhead - ms["launcher_python"] - work
                                               - activation_ms, 1)},
        "runs": runs,
        "byte_compiled": _byte_compiled(launcher),
        "PYTHONDONTWRITEBYTECODE": "unset",
        "activate_d_scripts": len(scripts),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_conda", description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warm-runs", type=int, default=41)
    p.add_argument("--warm-only", action="store_true",
                   help="skip the pack figures: node warm start only (needs conda-pack too)")
    args = p.parse_args(argv)
    from kits.condakit import build_channel, can_build, install_env

    why = can_build()
    if why:
        print(f"bench_conda: {why}", file=sys.stderr)
        return 2
    import envship.packing.pipeline as pipeline

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
        for _ in range(0 if args.warm_only else args.runs):
            pack_runs["envship"].append(_timed(lambda: envship_pack(a, work / "bc")))
            pack_runs["envship_no_compiler"].append(
                _timed(lambda: envship_pack(a, work / "bc0", False)))
            pack_runs["conda_pack"].append(_timed(lambda: conda_pack(a, tarball)))
        if args.warm_only:
            conda_pack(a, tarball)
        else:
            out["pack"] = {k: _median(v) for k, v in pack_runs.items()}

        store = work / "store"
        import envship

        ra = envship.pack(a / "bin" / "python", cache_dir=work / "bc", output=store)
        rb = envship.pack(b / "bin" / "python", cache_dir=work / "bc", output=store)
        if not args.warm_only:
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
        for i in range(1 if args.warm_only else args.runs):
            cache = work / f"node-{i}"
            env = dict(os.environ, ENVSHIP_CACHE=str(cache))
            cold.append(_timed(lambda env=env: _run(  # type: ignore[misc]
                [str(BIN / "envship"), "exec", ref, "--", "python", "-c", "pass"], env=env)))
            dest = work / f"unpacked-{i}" / "somewhere" / "env"

            def untar(dest: Path = dest) -> None:
                dest.mkdir(parents=True)
                _run(["tar", "xzf", str(tarball), "-C", str(dest)])
                _run([str(dest / "bin" / "conda-unpack")])
                _run([str(dest / "bin" / "python"), "-c", "pass"])

            unpack.append(_timed(untar))
        if not args.warm_only:
            out["node_cold"] = {"envship_exec": _median(cold),
                                "tar_conda_unpack": _median(unpack)}
        out["node_warm"] = _warm(ref, work / "node-0", work / "unpacked-0" / "somewhere" / "env",
                                 args.warm_runs)
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
