"""One side of the churn tests, as its own process (so it can be killed with SIGKILL).

Usage:
  python churn_worker.py ship SPECS.json STORE_URL ROUNDS SETTLE SEED
  python churn_worker.py gc STORE_URL ROUNDS SETTLE [STOP_FILE]
(with STOP_FILE, gc goes on after ROUNDS until that file exists, then does one more round)
SPECS.json: [{"manifest": <manifest dict>, "blobs": {digest: path}}, ...]. Prints one JSON line
per operation (flushed): what it did and whether it met the other side.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from envship.packing.manifest import Manifest
from envship.store import Timing, open_store


def main() -> None:
    mode = sys.argv[1]
    stop: Path | None = None
    if mode == "ship":
        specs = json.loads(Path(sys.argv[2]).read_text())
        store = open_store(sys.argv[3])
        rounds, settle, seed = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    else:
        store = open_store(sys.argv[2])
        rounds, settle, seed = int(sys.argv[3]), float(sys.argv[4]), 0
        stop = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    store.timing = Timing(settle=settle, sweep_limit=8.0, poll=0.05)  # killed gcs: short waits
    rng = random.Random(seed)
    n, stopped = 0, False
    while n < rounds or (stop is not None and not stopped):
        stopped = stop is not None and stop.exists()  # a round begun after the stop is the last
        steps: list[str] = []
        if mode == "ship":
            spec = rng.choice(specs)
            manifest = Manifest.from_dict(spec["manifest"])
            blobs = {k: Path(v) for k, v in spec["blobs"].items()}
            result = store.publish(manifest, blobs, step=steps.append, provenance=False)
            print(json.dumps({
                "op": "ship", "env": result.env_id, "sent": result.bytes_sent,
                "reused": sum(not x.uploaded for x in result.layers),
                "waited": result.waited, "met": "waiting" in steps or "rechecking" in steps,
                "slow": "slow" in steps,
            }), flush=True)
            time.sleep(rng.uniform(0, 0.2))
        else:
            gc = store.gc(keep=n % 2 * 2, grace=0, step=steps.append)  # keep 0, 2, 0, ...
            print(json.dumps({
                "op": "gc", "envs": len(gc.envs_removed), "blobs": len(gc.blobs_removed),
                "spared": gc.blobs_spared + len(gc.envs_spared), "seconds": gc.seconds,
            }), flush=True)
        n += 1


if __name__ == "__main__":
    main()
