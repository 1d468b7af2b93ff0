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
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


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
        bare, ex, sf = [], [], []
        for _ in range(args.warm_runs):  # interleaved: load changes hit all three alike
            bare.append(timed(bare_cmd))
            ex.append(timed(exec_cmd, env))
            sf.append(timed([PY, str(script), str(uri), "--", "python", "-c", "pass"], env))
        b = statistics.median(bare)
        print(f"warm: python -c pass in an empty venv {b * 1000:.1f} ms")
        print(f"warm: envship exec +{(statistics.median(ex) - b) * 1000:.1f} ms")
        print(f"warm: envship_node.py +{(statistics.median(sf) - b) * 1000:.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
