"""Cold pack of the reference env by this checkout and by an earlier commit, in one run.

    .venv/bin/python -m benchmarks.bench_cold_pack [--against REV] [--runs 3] [--profile full]

Installs the envship of REV (default ``e05b080``, the last commit before package-granular
layers and bytecode inside the blobs) into its own venv under $ENVSHIP_BENCH_DIR/commits/
(`git archive` + `uv pip install`, once), byte-compiles both installs (variable unset, as a
wheel install leaves them), then times `envship pack --python REF -o OUT -q` with an empty
`ENVSHIP_HOME` (no build cache, no pyc cache) for each, interleaved in every round: wall
clock and the CPU of the process and its children (the compile workers). A third figure packs
a second venv holding the same distributions after this checkout's cold pack (same build
cache): what a user's next new env costs when its packages were packed once on the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Results, bench_context, fresh_dir, run, uv_bin, work_dir, write_results
from .envship_steps import envship_bin
from .refenv import PROFILES, _ensure, _make_venv, reference_env

__all__ = ["main"]

NAME = "bench_cold_pack"
BEFORE = "e05b080"


def _install_rev(rev: str) -> Path:
    """A venv with envship at *rev* (cached by the full commit id); its console script."""
    repo = Path(__file__).resolve().parent.parent
    full = run(["git", "rev-parse", rev], cwd=repo).stdout.strip()
    root = work_dir() / "commits" / full[:12]
    exe = root / "venv" / "bin" / "envship"
    if not exe.exists():
        src = fresh_dir(root / "src")
        archive = subprocess.run(["git", "archive", "--format=tar", full], cwd=repo,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        run([uv_bin(), "venv", "-q", "-p", sys.executable, str(root / "venv")])
        run([uv_bin(), "pip", "install", "-q", "-p", str(root / "venv" / "bin" / "python"),
             str(src)])
    return exe


def _compile(python: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
               ).stdout.strip()
    subprocess.run([str(python), "-m", "compileall", "-q", site], env=env,
                   capture_output=True, check=False)


def _pack(exe: str, python: Path, home: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU of it and its children) of one pack into *out* with *home*."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["ENVSHIP_HOME"] = str(home)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run([exe, "pack", "--python", str(python), "-o", str(out), "-q"], env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_cold_pack")
    p.add_argument("--against", default=BEFORE, help="the earlier commit (default %(default)s)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", default="full", choices=sorted(PROFILES))
    args = p.parse_args(argv)
    results = Results(context=bench_context(NAME))
    env = reference_env(args.profile)
    twin_root = work_dir() / args.profile / "ref-again"
    _ensure(twin_root, [PROFILES[args.profile], "again"],
            lambda: _make_venv(twin_root, PROFILES[args.profile], []))
    tools = {"this checkout": envship_bin(), f"envship at {args.against}":
             str(_install_rev(args.against))}
    for exe in tools.values():
        _compile(Path(exe).parent / "python")
    results.context.update(profile=args.profile, against=args.against, runs=args.runs,
                           reference_env=str(env.venv))
    scratch = work_dir() / "cold-pack-scratch"
    samples: dict[str, list[tuple[float, float]]] = {t: [] for t in tools}
    again: list[tuple[float, float]] = []
    for r in range(args.runs):
        for tool, exe in tools.items():  # interleaved: both see the same machine
            home = fresh_dir(scratch / "home")
            samples[tool].append(_pack(exe, env.python, home, fresh_dir(scratch / "out")))
            print(f"round {r + 1}: {tool}: {samples[tool][-1][0]:.2f} s "
                  f"(CPU {samples[tool][-1][1]:.2f} s), load {os.getloadavg()[0]:.1f}",
                  flush=True)
            if tool == "this checkout":
                again.append(_pack(exe, twin_root / "bin" / "python", home,
                                   fresh_dir(scratch / "out")))
    rows = []
    for tool, vals in samples.items():
        wall = results.add_time("cold pack", tool, [w for w, _ in vals])
        cpu = results.add_time("cold pack: CPU", tool, [c for _, c in vals])
        rows.append((tool, wall, cpu))
    wall2 = results.add_time("pack of a new venv with the same distributions", "this checkout",
                             [w for w, _ in again])
    cpu2 = statistics.median(c for _, c in again)
    ratio = rows[0][1] / rows[1][1]
    results.add("ratio cold pack", "this checkout", round(ratio, 3), "x",
                f"this checkout / envship at {args.against}")
    table = ["| figure | wall (median) | CPU incl. compile workers |", "|---|---|---|"]
    table += [f"| cold pack, {tool} | {wall:.2f} s | {cpu:.2f} s |" for tool, wall, cpu in rows]
    table.append(f"| ratio | {ratio:.2f}x | {rows[0][2] / rows[1][2]:.2f}x |")
    table.append(f"| new venv, same distributions (build cache warm) | {wall2:.2f} s | "
                 f"{cpu2:.2f} s |")
    text = "\n".join(table) + "\n"
    out = write_results(NAME, results, text)
    print(text + f"\nload average {results.context['loadavg_start']} -> "
          f"{results.context['loadavg_end']}; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
