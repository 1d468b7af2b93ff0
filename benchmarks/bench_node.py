"""Node runtime figures without the packer: warm start overhead and cold fetch+unpack vs tar.

    .venv/bin/python benchmarks/bench_node.py [--packages numpy,pandas,pyarrow] [--warm-runs 50]

Builds a venv with uv, turns its site-packages into one deps layer (docs/formats.md layout),
writes a store, then measures (medians, wall clock, page cache warm):
- warm start: `envship exec ENV -- python -c pass` and `python envship_node.py ENV -- python -c
  pass` against `python -c pass` in an empty venv of the same interpreter (interleaved runs);
- cold start: `envship exec` on an empty cache (fetch + sha256 + safe unpack + view) against
  `tar xzf` of the same blobs.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PY = os.path.realpath(sys.executable)  # the base interpreter, not this venv's


def _layer(site: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        names = []
        for d, dirs, files in os.walk(site):
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            rel = os.path.relpath(d, site)
            names.append(("site-packages" if rel == "." else f"site-packages/{rel}", d))
            names += [(f"{names[-1][0]}/{f}", os.path.join(d, f)) for f in files
                      if not f.endswith(".pyc")]
        for name, path in sorted(names):
            info = tar.gettarinfo(path, name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isfile():
                info.mode = 0o755 if info.mode & 0o111 else 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                info.mode = 0o755 if info.isdir() else info.mode
                tar.addfile(info)
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build_store(work: Path, packages: list[str]) -> Path:
    venv = work / "venv"
    subprocess.run([str(BIN / "uv"), "venv", "-q", "-p", PY, str(venv)], check=True)
    subprocess.run([str(BIN / "uv"), "pip", "install", "-q", "-p", str(venv / "bin/python"),
                    *packages], check=True)
    mm = "python{}.{}".format(*sys.version_info[:2])
    blob = _layer(venv / "lib" / mm / "site-packages")
    hex_ = hashlib.sha256(blob).hexdigest()
    store = work / "store"
    (store / "blobs/sha256").mkdir(parents=True)
    (store / "envs").mkdir()
    (store / "blobs/sha256" / f"{hex_}.tar.gz").write_bytes(blob)
    v = sys.version_info
    manifest = {
        "schema": "envship.manifest/1",
        "python": {"implementation": "cpython", "version": f"{v[0]}.{v[1]}.{v[2]}",
                   "abi": f"cp{v[0]}{v[1]}", "platform": "linux_x86_64"},
        "layers": [{"kind": "deps", "digest": f"sha256:{hex_}", "size": len(blob), "files": 0}],
        "distributions": [], "entry_points": {}, "excluded": [],
    }
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    uri = store / "envs" / f"{hashlib.sha256(data).hexdigest()}.json"
    uri.write_bytes(data)
    return uri


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    return timed_cpu(cmd, env)[0]


def timed_cpu(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, user+sys CPU seconds) of *cmd*; CPU time varies less on a busy machine."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--packages", default="numpy,pandas,pyarrow")
    p.add_argument("--warm-runs", type=int, default=50)
    p.add_argument("--cold-runs", type=int, default=3)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envship-bench-node-"))
    try:
        uri = build_store(work, args.packages.split(","))
        blobs = sorted((uri.parent.parent / "blobs/sha256").glob("*.tar.gz"))
        size = sum(b.stat().st_size for b in blobs)
        print(f"env {uri.name[:12]}: {len(blobs)} layer(s), {size / 1e6:.1f} MB compressed")
        script = work / "envship_node.py"
        script.write_text(subprocess.run([str(BIN / "envship"), "node-script"], check=True,
                                         capture_output=True, text=True).stdout)
        cache = work / "cache"
        env = dict(os.environ, ENVSHIP_CACHE=str(cache))
        exec_cmd = [str(BIN / "envship"), "exec", str(uri), "--", "python", "-c", "pass"]

        cold, tar = [], []
        for _ in range(args.cold_runs):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(timed(exec_cmd, env))
            out = work / "untar"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            tar.append(timed(["bash", "-c", " && ".join(
                f"tar xzf {b} -C {out}" for b in blobs) + f" && {PY} -c pass"]))
        c, t = statistics.median(cold), statistics.median(tar)
        print(f"cold: envship exec {c:.2f} s, tar xzf + python -c pass {t:.2f} s, "
              f"ratio {c / t:.2f}")

        # Baseline: the same interpreter in an empty venv (the base install's own
        # site-packages may hold many .pth files a venv never reads).
        empty = work / "empty-venv"
        subprocess.run([str(BIN / "uv"), "venv", "-q", "-p", PY, str(empty)], check=True)
        bare_cmd = [str(empty / "bin" / "python"), "-c", "pass"]
        # the single file runs with the same empty venv's python (a base install's site-packages
        # can be slow to start and is not ours to measure)
        sf_cmd = [bare_cmd[0], str(script), str(uri), "--", "python", "-c", "pass"]
        runs: dict[str, list[tuple[float, float]]] = {"bare": [], "exec": [], "file": []}
        for _ in range(args.warm_runs):  # interleaved: load changes hit all three alike
            runs["bare"].append(timed_cpu(bare_cmd))
            runs["exec"].append(timed_cpu(exec_cmd, env))
            runs["file"].append(timed_cpu(sf_cmd, env))
        wall = {k: statistics.median(w for w, _ in v) * 1000 for k, v in runs.items()}
        cpu = {k: statistics.median(c for _, c in v) * 1000 for k, v in runs.items()}
        print(f"warm: python -c pass in an empty venv {wall['bare']:.1f} ms "
              f"(CPU {cpu['bare']:.1f} ms)")
        for key, label in (("exec", "envship exec"), ("file", "envship_node.py")):
            print(f"warm: {label} +{wall[key] - wall['bare']:.1f} ms "
                  f"(CPU +{cpu[key] - cpu['bare']:.1f} ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
