"""Store benchmarks: publish throughput to a real S3 API (moto) vs plain s3fs, and `envship ship`
cold / warm / after a one-line edit to a local store and to S3.

    .venv/bin/python -m benchmarks.bench_store [--mib 256] [--runs 3] [--python PY]

Without --python only the throughput part runs (it needs no packed env).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
       "AWS_DEFAULT_REGION": "us-east-1"}


def _moto() -> Any:
    sys.path.insert(0, str(ROOT / "tests"))
    from support import start_moto_server

    return start_moto_server()


def _random_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def throughput(endpoint: str, mib: int, runs: int) -> dict[str, Any]:
    """Seconds to get one *mib* MiB blob into S3: envship publish vs `s3fs.put_file`."""
    import s3fs

    from envship.packing.manifest import LayerRef, Manifest, PythonInfo
    from envship.store import open_store

    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    blob = work / "blob.bin"
    hexd = _random_file(blob, mib)
    size = blob.stat().st_size
    layer = LayerRef("deps", f"sha256:{hexd}", size, 1)
    manifest = Manifest(PythonInfo("cpython", "3.11.7", "cp311", "linux_x86_64"), (layer,))
    fs = s3fs.S3FileSystem(endpoint_url=endpoint)
    envship_s, put_s = [], []
    for run in range(runs):
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        fs.mkdir(bucket)
        store = open_store(f"s3://{bucket}/store", {"endpoint_url": endpoint})

        def with_envship(store: Any = store) -> None:
            start = time.perf_counter()
            store.publish(manifest, {layer.digest: blob}, provenance=False)
            envship_s.append(time.perf_counter() - start)

        def with_put(bucket: str = bucket) -> None:
            start = time.perf_counter()
            fs.put_file(str(blob), f"{bucket}/plain/blob.bin")
            put_s.append(time.perf_counter() - start)

        # Alternate who goes first: moto slows down as it holds more data.
        for step in ((with_envship, with_put) if run % 2 == 0 else (with_put, with_envship)):
            step()
        fs.rm(bucket, recursive=True)
    e, p = statistics.median(envship_s), statistics.median(put_s)
    return {
        "mib": mib,
        "envship_publish_s": round(e, 3),
        "s3fs_put_s": round(p, 3),
        "envship_MiB_per_s": round(mib / e, 1),
        "s3fs_put_MiB_per_s": round(mib / p, 1),
        "throughput_ratio": round(p / e, 3),  # envship throughput / s3fs.put throughput
    }


def _ship(store: str, python: str, home: Path, extra: dict[str, str]) -> tuple[float, Any]:
    env = {**os.environ, "ENVSHIP_HOME": str(home), **extra}
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "envship"), "ship", store,
                           "--python", python, "--json"], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"envship ship failed:\n{proc.stderr}")
    return time.perf_counter() - start, json.loads(proc.stdout)


def _in_process_warm(store: str, python: str, opts: dict[str, Any]) -> float:
    from envship.shipping import ship_result

    start = time.perf_counter()
    ship_result(store, storage_options=opts, python=python)
    return time.perf_counter() - start


def ships(python: str, edit_file: Path | None, endpoint: str, runs: int) -> dict[str, Any]:
    import s3fs

    work = Path(tempfile.mkdtemp(prefix="bench-ship-"))
    home = work / "home"
    bucket = f"ship-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem(endpoint_url=endpoint).mkdir(bucket)
    out: dict[str, Any] = {}
    for name, store, extra, opts in (
        ("local", str(work / "store"), {}, {}),
        ("s3", f"s3://{bucket}/store", {"AWS_ENDPOINT_URL": endpoint},
         {"endpoint_url": endpoint}),
    ):
        cold, info = _ship(store, python, home, extra)
        warm_runs = [_ship(store, python, home, extra) for _ in range(runs)]
        warm = [secs for secs, _ in warm_runs]
        warm_publish = [float(info["seconds"]) for _, info in warm_runs]
        os.environ.update(extra)
        warm_api = [_in_process_warm(store, python, opts) for _ in range(runs)]
        row = {"cold_s": round(cold, 3), "cold_bytes_sent": info["bytes_sent"],
               "warm_cli_s": round(statistics.median(warm), 3),
               "warm_api_s": round(statistics.median(warm_api), 3),
               "warm_publish_s": round(statistics.median(warm_publish), 4),
               "warm_bytes_sent": warm_runs[-1][1]["bytes_sent"]}
        if edit_file is not None:
            text = edit_file.read_text()
            edit_file.write_text(text + f"\n_BENCH_EDIT = {time.time_ns()}\n")
            try:
                secs, edited = _ship(store, python, home, extra)
            finally:
                edit_file.write_text(text)
            row["edit_s"] = round(secs, 3)
            row["edit_publish_s"] = edited["seconds"]
            row["edit_bytes_sent"] = edited["bytes_sent"]
            row["edit_layers_sent"] = [x["kind"] for x in edited["layers"] if x["uploaded"]]
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", help="interpreter of an env to ship (cold/warm/edit)")
    parser.add_argument("--edit", type=Path, help="a module of its editable project to edit")
    args = parser.parse_args()
    os.environ.update(AWS)
    server = _moto()
    try:
        result: dict[str, Any] = {"throughput": throughput(server.endpoint, args.mib, args.runs)}
        if args.python:
            result["ship"] = ships(args.python, args.edit, server.endpoint, args.runs)
    finally:
        server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
