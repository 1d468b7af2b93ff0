"""Publish a fixture env from a subprocess (for concurrency and kill -9 tests).

Usage: python publish_worker.py SPEC.json STORE_URL [SECONDS_PER_MIB]
SPEC.json: {"manifest": <manifest dict>, "blobs": {digest: path}}. Prints `sent <bytes>` lines
as the upload goes (flushed), then `done <json result>`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from envship.packing.manifest import Manifest
from envship.store import open_store


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    manifest = Manifest.from_dict(spec["manifest"])
    blobs = {k: Path(v) for k, v in spec["blobs"].items()}
    lock = threading.Lock()
    total = [0]

    def progress(digest: str, sent: int, size: int) -> None:
        if delay:
            time.sleep(delay * sent / (1 << 20))  # a slow link
        with lock:
            total[0] += sent
            print(f"sent {total[0]}", flush=True)

    result = open_store(sys.argv[2]).publish(manifest, blobs, progress)
    print("done " + json.dumps(result.to_dict()), flush=True)


if __name__ == "__main__":
    main()
