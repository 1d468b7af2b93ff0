"""gc time on a big store on moto S3: ENVS envs x BLOBS blobs each, drawn from a shared pool.

Usage: python -m benchmarks.bench_gc [ENVS] [BLOBS] [POOL]   (default 1000 100 5000)
Starts its own moto_server. Prints the set-up time and, for three gcs, the time and what
they removed: nothing to collect; 10 % of the pool unreferenced; --keep half the envs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the tests' moto helpers
from envship.store import open_store  # noqa: E402
from kits.support import AWS_ENV, start_moto_server  # noqa: E402


def main() -> None:
    envs, per_env, pool_size = (int(a) for a in (sys.argv[1:] + ["1000", "100", "5000"])[:3])
    os.environ.update(AWS_ENV)
    server = start_moto_server()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint
    try:
        import s3fs

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3fs.S3FileSystem(skip_instance_cache=True).mkdir(bucket)
        store = open_store(f"s3://{bucket}/envs")
        loc, fs = store.location, store.location.fs
        rng = random.Random(7)
        start = time.monotonic()
        pool = []
        for i in range(pool_size):
            data = f"blob {i}\n".encode()
            pool.append(("sha256:" + hashlib.sha256(data).hexdigest(), data))
        manifests = []
        for e in range(envs):
            layers = [{"kind": "dist", "digest": d, "size": len(b), "files": 1}
                      for d, b in rng.sample(pool, per_env)]
            manifests.append(json.dumps({"schema": "envship.manifest/2", "env": e,
                                         "layers": layers}, sort_keys=True,
                                        separators=(",", ":")).encode())
        used = {lay["digest"] for m in manifests for lay in json.loads(m)["layers"]}

        def put(item: tuple[str, bytes]) -> None:
            fs.pipe_file(item[0], item[1])

        items = [(loc.blob_path(d), b) for d, b in pool]
        items += [(loc.env_path(hashlib.sha256(m).hexdigest()), m) for m in manifests]
        with ThreadPoolExecutor(32) as ex:
            list(ex.map(put, items))
        print(f"set-up: {envs} envs x {per_env} blobs, {pool_size} distinct blobs "
              f"({len(used)} referenced), {len(items)} objects in {time.monotonic() - start:.0f}s")
        for label, kw in (("nothing to collect", {}), ("unreferenced pool blobs", {}),
                          ("--keep half the envs", {"keep": envs // 2})):
            if label == "nothing to collect":
                kw = {"grace": 0.0}
                # Only referenced blobs left: drop the unreferenced ones first, untimed.
                store.gc(grace=0)
            elif label == "unreferenced pool blobs":
                extra = [(loc.blob_path("sha256:" + hashlib.sha256(f"x{i}".encode()).hexdigest()),
                          f"x{i}".encode()) for i in range(pool_size // 10)]
                with ThreadPoolExecutor(32) as ex:
                    list(ex.map(put, extra))
                kw = {"grace": 0.0}
            else:
                kw = {**kw, "grace": 0.0}
            t = time.monotonic()
            result = store.gc(**kw)  # type: ignore[arg-type]
            took = time.monotonic() - t
            print(f"gc ({label}): {took:.1f}s, removed {len(result.envs_removed)} envs and "
                  f"{len(result.blobs_removed)} blobs (incl. 2 x settle = "
                  f"{2 * store.timing.settle:.0f}s when it removes anything)")
        t = time.monotonic()
        v = store.verify()
        print(f"verify: {time.monotonic() - t:.1f}s, {v.envs} envs, {v.blobs} blobs, "
              f"damage {len(v.damage)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
