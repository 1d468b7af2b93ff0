"""Node figures for schema-2 envs (one blob per distribution, bytecode inside): merged-view
assembly for a new combination of cached blobs, cold start vs `tar xzf`, parallel fetches.

    .venv/bin/python benchmarks/bench_view.py [--packages numpy,pandas,pyarrow] [--runs 3]

Builds a venv with uv, splits its site-packages into one layer per distribution by RECORD
(compiled with unchecked-hash pycs, as pack does for "bytecode": "packed"), writes a store
holding env A (every distribution but the smallest) and env B (all of them), then measures
(medians, wall clock, page cache warm):
- view: `prepare(B)` in-process on a cache holding all of B's blobs and A's view (what a node
  that ran A does for A + one package), with the number of files in the merged site-packages;
- cold: `envship exec B -- python -c pass` on an empty cache, blobs served over HTTP, with
  ENVSHIP_NODE_FETCHES=1 and =4, against `tar xzf` of the same blobs + `python -c pass`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PY = os.path.realpath(sys.executable)
MM = "{}.{}".format(*sys.version_info[:2])
COMPILE = (
    "import compileall, py_compile, sys; compileall.compile_dir(sys.argv[1], quiet=2, "
    "workers=0, stripdir=sys.argv[1], "
    "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
)


def _blob(tree: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(tree.rglob("*")):
            info = tar.gettarinfo(str(path), path.relative_to(tree).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isfile():
                info.mode = 0o755 if info.mode & 0o111 else 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def split(site: Path, work: Path) -> list[dict[str, object]]:
    """One compiled tree per distribution (by RECORD) -> layer dicts with their blob bytes."""
    layers = []
    for info in sorted(site.glob("*.dist-info")):
        meta = dict(line.split(": ", 1) for line in (info / "METADATA").read_text().splitlines()
                    if ": " in line)
        tree = work / info.name / "site-packages"
        for row in (info / "RECORD").read_text().splitlines():
            rel = row.rsplit(",", 2)[0]
            src = (site / rel).resolve()
            if not rel or rel.endswith(".pyc") or not src.is_relative_to(site.resolve()):
                continue
            dest = tree / src.relative_to(site.resolve())
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
        subprocess.run([PY, "-I", "-c", COMPILE, str(tree)], check=True)
        data = _blob(tree.parent)
        layers.append({
            "kind": "dist", "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data), "files": sum(1 for p in tree.rglob("*") if p.is_file()),
            "dists": [f"{meta['Name']}=={meta['Version']}"], "bytecode": "packed", "_data": data,
        })
    return layers


def write_env(store: Path, layers: list[dict[str, object]]) -> str:
    v = sys.version_info
    clean = [{k: x for k, x in lay.items() if k != "_data"} for lay in layers]
    clean.sort(key=lambda lay: lay["dists"])  # type: ignore[arg-type,return-value]
    manifest = {
        "schema": "envship.manifest/2",
        "python": {"implementation": "cpython", "version": f"{v[0]}.{v[1]}.{v[2]}",
                   "abi": f"cp{v[0]}{v[1]}", "platform": "linux_x86_64",
                   "cache_tag": sys.implementation.cache_tag},
        "layers": clean,
        "distributions": [], "entry_points": {}, "excluded": [],
    }
    for lay in layers:
        hex_ = str(lay["digest"]).split(":")[1]
        path = store / "blobs" / "sha256" / f"{hex_}.tar.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lay["_data"])  # type: ignore[arg-type]
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    env_id = hashlib.sha256(data).hexdigest()
    (store / "envs").mkdir(parents=True, exist_ok=True)
    (store / "envs" / f"{env_id}.json").write_bytes(data)
    return env_id


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(directory), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--packages", default="numpy,pandas,pyarrow")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-cold", action="store_true", help="only the view figure")
    args = p.parse_args()
    from envship.node import prepare

    # Under the benchmarks' own dir, not /tmp: on this machine /tmp (ext4) takes ~0.35 ms per
    # mkdir, 15x what ~/.cache does, and a view is ~600 mkdirs; node caches live in ~/.cache.
    base = Path(os.environ.get("ENVSHIP_BENCH_DIR") or "~/.cache/envship-bench").expanduser()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="view-", dir=base))
    try:
        venv = work / "venv"
        subprocess.run([str(BIN / "uv"), "venv", "-q", "-p", PY, str(venv)], check=True)
        subprocess.run([str(BIN / "uv"), "pip", "install", "-q", "-p", str(venv / "bin/python"),
                        *args.packages.split(",")], check=True)
        layers = split(venv / "lib" / f"python{MM}" / "site-packages", work / "split")
        smallest = min(layers, key=lambda lay: int(lay["size"]))  # type: ignore[call-overload]
        store = work / "store"
        env_a = write_env(store, [lay for lay in layers if lay is not smallest])
        env_b = write_env(store, layers)
        size = sum(int(lay["size"]) for lay in layers)  # type: ignore[call-overload]
        print(f"{len(layers)} dist blobs, {size / 1e6:.1f} MB; A + {smallest['dists']} = B")

        views: list[float] = []
        cpus: list[float] = []  # this process only: the interpreter probe is a child
        files = 0
        for _ in range(args.runs):
            cache = work / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            prepare(str(store / "envs" / f"{env_a}.json"), cache_dir=cache)
            # B's one new blob fetched first, so only the view assembly is timed
            prepare(str(store / "envs" / f"{env_b}.json"), cache_dir=cache)
            shutil.rmtree(cache / "envs" / env_b)
            t, c = time.perf_counter(), time.process_time()
            view = prepare(str(store / "envs" / f"{env_b}.json"), cache_dir=cache)
            views.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            files = sum(len(f) for _, _, f in os.walk(Path(view.path) / "lib"))
        print(f"view for a new combination of cached blobs: {statistics.median(views):.3f} s "
              f"(CPU {statistics.median(cpus):.3f} s; {files} files in site-packages)")

        if args.no_cold:
            return
        httpd, url = serve(store)
        try:
            uri = f"{url}/envs/{env_b}.json"
            blobs = sorted((store / "blobs" / "sha256").glob("*.tar.gz"))
            cold: dict[str, list[float]] = {"1": [], "4": []}
            tar = []
            for _ in range(args.runs):
                for n in cold:
                    cache = work / "cache"
                    shutil.rmtree(cache, ignore_errors=True)
                    env = dict(os.environ, ENVSHIP_CACHE=str(cache), ENVSHIP_NODE_FETCHES=n)
                    cold[n].append(timed([str(BIN / "envship"), "exec", uri, "--", "python",
                                          "-c", "pass"], env))
                out = work / "untar"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                tar.append(timed(["bash", "-c", " && ".join(
                    f"tar xzf {b} -C {out}" for b in blobs) + f" && {PY} -c pass"]))
            t_ = statistics.median(tar)
            for n, values in cold.items():
                c = statistics.median(values)
                print(f"cold, {n} fetch thread(s): {c:.2f} s; tar xzf + python -c pass "
                      f"{t_:.2f} s; ratio {c / t_:.2f}")
        finally:
            httpd.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
