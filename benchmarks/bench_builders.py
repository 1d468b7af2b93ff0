"""Lock builds: `envship pack -r LOCK` cold / warm vs `pex` of the same lock vs venv + pip + pack.

    .venv/bin/python -m benchmarks.bench_builders [--packages "numpy pandas pyarrow scikit-learn"]

Every variant runs in its own process, in the same run, on the same pinned lock (resolved once
with `uv pip compile` for this machine). "cold" = empty download caches (uv / pex / pip) and an
empty envship build cache; "warm uv" = uv's cache kept, envship's caches empty (install and
archive again); "warm" = everything kept (what a second `envship pack -r` costs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--packages", default="numpy pandas pyarrow scikit-learn")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-builders-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "PEX_"))}
    try:
        req_in = work / "requirements.in"
        req_in.write_text("\n".join(args.packages.split()) + "\n")
        lock = work / "requirements.txt"
        subprocess.run([str(BIN / "uv"), "pip", "compile", "-q", str(req_in), "-o", str(lock)],
                       check=True)
        n = len([ln for ln in lock.read_text().splitlines() if "==" in ln])

        def env(tag: str, **extra: str) -> dict[str, str]:
            d = work / tag
            d.mkdir(exist_ok=True)
            return {**base_env, "ENVSHIP_HOME": str(d / "envship"), **extra}

        pack = [str(BIN / "envship"), "pack", "-r", str(lock), "--json"]
        results: dict[str, float] = {}
        uv_cache = str(work / "uv-cache")
        cold = env("lock-cold", UV_CACHE_DIR=uv_cache)
        results["envship pack -r (cold)"] = _timed(
            [*pack, "-o", str(work / "o1")], cold, work)
        results["envship pack -r (warm uv cache)"] = _timed(
            [*pack, "-o", str(work / "o2")], env("lock-warm-uv", UV_CACHE_DIR=uv_cache), work)
        results["envship pack -r (warm)"] = _timed([*pack, "-o", str(work / "o3")], cold, work)

        pex_env = env("pex", PEX_ROOT=str(work / "pex-root"))
        pex = [str(BIN / "envship"), "pack", "-r", str(lock), "--format", "pex"]
        results["pex (cold)"] = _timed([*pex, "-o", str(work / "p1")], pex_env, work)
        results["pex (warm)"] = _timed([*pex, "-o", str(work / "p2")], pex_env, work)

        for label, cache in (("cold", "pip-cache"), ("warm pip cache", "pip-cache")):
            venv = work / f"venv-{label.split()[0]}"
            pip_env = env(f"pip-{label.split()[0]}", PIP_CACHE_DIR=str(work / cache))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            _timed([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "-r", str(lock)], pip_env, work)
            _timed([str(BIN / "envship"), "pack", "-p", str(venv), "-o",
                    str(work / f"v-{label.split()[0]}"), "--json"], pip_env, work)
            results[f"venv + pip + pack ({label})"] = time.perf_counter() - start
        ref = results["envship pack -r (cold)"]
        print(f"{n} distributions ({args.packages}); seconds, ratio to envship pack -r (cold)")
        for name, sec in results.items():
            print(f"  {name:<38} {sec:8.1f} s   x{sec / ref:5.2f}")
        print(json.dumps(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
