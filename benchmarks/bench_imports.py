"""Import time of `import pandas, pyarrow, sklearn` in the user's venv vs the same env on a node.

    .venv/bin/python -m benchmarks.bench_imports [--runs 9]

Builds (once, cached under $ENVSHIP_BENCH_DIR/imports) a uv venv with the full reference
packages (numpy, pandas, pyarrow, scikit-learn, pinned in refenv.py) and byte-compiles its
site-packages (`python -m compileall -q`, as an installer with bytecode compilation leaves it).
Ships it with `envship ship`, runs one `envship exec` on an empty node cache (fetch, verify,
unpack, assemble), then times a fresh process running the import (wall clock and user+sys CPU,
median of --runs, the three commands interleaved in every round, after one untimed warm-up):
- (a) user venv: `VENV/bin/python -c "import pandas, pyarrow, sklearn"`;
- (b) node view: the env view's interpreter in the node cache (its path printed by
  `envship exec ENV -- python -c "import sys; print(sys.executable)"`), run directly;
- (c) `envship exec ENV -- python -c ...`: (b) plus envship's own start-up.
Each with PYTHONDONTWRITEBYTECODE=1 and with the variable removed from the child's
environment. The dev venv's site-packages and envship's package are byte-compiled once before
timing (with the variable unset), as an installed wheel would be. Also counts files written by
the runs without the variable (a venv or view lacking bytecode would get .pyc files written).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .common import Results, bench_context, finish, fresh_dir, run, work_dir
from .envship_steps import envship_bin, envship_ship
from .refenv import PROFILES, _ensure, _make_venv

__all__ = ["main"]

NAME = "bench_imports"
IMPORT = "import pandas, pyarrow, sklearn"
TARGETS = ("user venv", "node view python", "envship exec")
MODES = ("PYTHONDONTWRITEBYTECODE=1", "PYTHONDONTWRITEBYTECODE unset")


def timed_cpu(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, user+sys CPU seconds of the child and its children)."""
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), cmd)
    return wall, usage.ru_utime + usage.ru_stime


def _site(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def _count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def _compile(python: str, *trees: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for tree in trees:
        subprocess.run([python, "-m", "compileall", "-q", str(tree)], env=env,
                       stdout=subprocess.DEVNULL, check=False)  # a few test files don't compile


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}", description=__doc__)
    p.add_argument("--runs", type=int, default=9)
    args = p.parse_args(argv)
    results = Results(context=bench_context(NAME))
    root = work_dir() / "imports"
    venv = root / "venv"
    packages = PROFILES["full"]

    def build() -> None:
        _make_venv(venv, packages, [])
        _compile(str(venv / "bin" / "python"), _site(venv))

    print("user venv (cached, byte-compiled)…", flush=True)
    _ensure(venv, [packages, "compileall"], build)
    import envship

    print("byte-compiling the dev venv and envship (once)…", flush=True)
    _compile(sys.executable, _site(Path(sys.prefix)), Path(envship.__file__).parent)
    home, store, cache = root / "home", fresh_dir(root / "store"), fresh_dir(root / "node-cache")
    print("ship + first exec (unpack)…", flush=True)
    _, info = envship_ship(venv / "bin" / "python", store, home)
    uri = str(store / "envs" / f"{info['env_id']}.json")
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PYTHONPATH")}
    base.update(ENVSHIP_CACHE=str(cache), ENVSHIP_PYTHON=os.path.realpath(sys.executable))
    probe = run([envship_bin(), "exec", uri, "--", "python", "-c",
                 "import sys; print(sys.executable)"], env=base)
    view_python = probe.stdout.strip().splitlines()[-1]
    print(f"view python: {view_python}")
    cmds = {
        "user venv": [str(venv / "bin" / "python"), "-c", IMPORT],
        "node view python": [view_python, "-c", IMPORT],
        "envship exec": [envship_bin(), "exec", uri, "--", "python", "-c", IMPORT],
    }
    envs = {MODES[0]: dict(base, PYTHONDONTWRITEBYTECODE="1"), MODES[1]: dict(base)}
    files_before = {"user venv": _count_files(venv), "node cache": _count_files(cache)}
    for env in envs.values():  # warm-up round (page cache; untimed)
        for cmd in cmds.values():
            timed_cpu(cmd, env)
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {
        (m, t): [] for m in MODES for t in TARGETS}
    for i in range(args.runs):
        print(f"round {i + 1}/{args.runs}", flush=True)
        for mode in MODES:
            for target in TARGETS:
                samples[(mode, target)].append(timed_cpu(cmds[target], envs[mode]))
    files_after = {"user venv": _count_files(venv), "node cache": _count_files(cache)}

    med: dict[tuple[str, str], tuple[float, float, float]] = {}  # wall median, CPU, wall min
    for (mode, target), values in samples.items():
        wall = results.add_time(f"{IMPORT} ({mode})", target, [w for w, _ in values])
        cpu = results.add_time(f"{IMPORT} ({mode}): CPU", target, [c for _, c in values])
        med[(mode, target)] = (wall, cpu, min(w for w, _ in values))
    for mode in MODES:
        user = med[(mode, "user venv")]
        for target in TARGETS[1:]:
            this = med[(mode, target)]
            results.add(f"ratio to user venv ({mode})", target, round(this[0] / user[0], 3), "x",
                        f"CPU ratio {this[1] / user[1]:.3f}, min-wall ratio "
                        f"{this[2] / user[2]:.3f}; target <= 1.1")
    for where in files_before:
        results.add(f"files written by the runs (warm-up included): {where}", "envship",
                    files_after[where] - files_before[where], "files")
    results.context.update(
        packages=list(packages), view_python=view_python, env_id=info["env_id"], runs=args.runs,
        envship_cli="dev venv site-packages + envship package byte-compiled with compileall "
                    "(PYTHONDONTWRITEBYTECODE unset for that step); for (c) the envship "
                    "process gets the same PYTHONDONTWRITEBYTECODE as the child, which only "
                    "stops writing: the compiled pycs are read either way")

    lines = [f"## {NAME} ({results.context['started']}; `{IMPORT}`, wall median of {args.runs} "
             "(min; user+sys CPU median), interleaved)", "",
             "| PYTHONDONTWRITEBYTECODE | " + " | ".join(TARGETS)
             + " | view / user venv | exec / user venv |", "|---|---|---|---|---|---|"]
    for mode in MODES:
        user = med[(mode, "user venv")]
        cells = [f"{med[(mode, t)][0]:.3f} s (min {med[(mode, t)][2]:.3f} s, CPU "
                 f"{med[(mode, t)][1]:.3f} s)" for t in TARGETS]
        ratios = [f"{med[(mode, t)][0] / user[0]:.3f} (min {med[(mode, t)][2] / user[2]:.3f}, "
                  f"CPU {med[(mode, t)][1] / user[1]:.3f})" for t in TARGETS[1:]]
        lines.append(f"| {'=1' if mode == MODES[0] else 'unset'} | " + " | ".join(cells + ratios)
                     + " |")
    results.context["loadavg_end"] = os.getloadavg()
    lines += ["", f"- user venv: {venv} (compileall -q: timestamp pycs); node view: "
              f"{view_python} (unchecked-hash pycs packed in the blobs)",
              f"- files written by the runs (warm-up included): user venv "
              f"{files_after['user venv'] - files_before['user venv']}, node cache "
              f"{files_after['node cache'] - files_before['node cache']}",
              "- the envship CLI runs byte-compiled: the dev venv's site-packages and envship's "
              "package were compiled once with compileall (PYTHONDONTWRITEBYTECODE unset)",
              f"- load average: start {results.context['loadavg_start']}, "
              f"end {results.context['loadavg_end']}"]
    return finish(NAME, results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
