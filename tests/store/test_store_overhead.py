"""What the publish/gc protocol costs a warm ship (everything already in the store)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from envship.store import Store, open_store
from kits.storekit import FixtureEnv, make_env


def _checks_only(store: Store, env: FixtureEnv) -> None:
    """What a warm ship did before the protocol: manifest and blob checks, in parallel."""
    loc = store.location
    paths = [loc.env_path(env.manifest.env_id)] + [loc.blob_path(x.digest)
                                                   for x in env.manifest.layers]

    def info(path: str) -> Any:
        loc.fs.invalidate_cache(path)
        return loc.fs.info(path)

    with ThreadPoolExecutor(len(paths)) as pool:
        list(pool.map(info, paths))


def _median(fn: Any, n: int = 15) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _warm(url: str, tmp_path: Path) -> tuple[Store, FixtureEnv, float, float]:
    store = open_store(url)
    env = make_env(tmp_path / "e")
    store.publish(env.manifest, env.blobs)
    _checks_only(store, env)
    before = _median(lambda: _checks_only(store, env))
    after = _median(lambda: store.publish(env.manifest, env.blobs))
    return store, env, before, after


def test_warm_ship_overhead_local(tmp_path: Path) -> None:
    _, _, before, after = _warm(str(tmp_path / "store"), tmp_path)
    print(f"warm ship, local store: checks only {before * 1e3:.1f} ms, with the protocol "
          f"{after * 1e3:.1f} ms (+{(after - before) * 1e3:.1f} ms)")
    assert after - before < 0.050


@pytest.mark.s3
def test_warm_ship_overhead_s3(s3_url: str, tmp_path: Path) -> None:
    store, env, before, after = _warm(s3_url, tmp_path)
    rtt = _median(lambda: store.location.fs.info(store.location.env_path(env.manifest.env_id)))
    sent: Counter[str] = Counter()
    events: list[tuple[str, str]] = []
    client = store.location.fs.s3

    def begin(**kw: Any) -> None:
        sent[kw["event_name"].rpartition(".")[2]] += 1
        events.append(("start", kw["event_name"]))

    def end(**kw: Any) -> None:
        events.append(("end", kw["event_name"]))

    client.meta.events.register("before-call.s3", begin)
    client.meta.events.register("after-call.s3", end)
    try:
        store.publish(env.manifest, env.blobs)
    finally:
        client.meta.events.unregister("before-call.s3", begin)
        client.meta.events.unregister("after-call.s3", end)
    # Round trips one after the other: a request that starts when none is in flight.
    rounds, in_flight = 0, 0
    for what, _ in events:
        if what == "start":
            rounds += in_flight == 0
            in_flight += 1
        else:
            in_flight -= 1
    extra = after - before
    print(f"warm ship, moto S3: checks only {before * 1e3:.1f} ms, with the protocol "
          f"{after * 1e3:.1f} ms (+{extra * 1e3:.1f} ms; one request alone takes "
          f"{rtt * 1e3:.1f} ms, moto serves parallel ones about one at a time); {rounds} "
          f"sequential round trips (1 before the protocol); requests: {dict(sent)}")
    # The lease PUT and the sweeps LIST ride along with the checks; the lease DELETE at the
    # end is the one extra round trip.
    assert sent["PutObject"] == 1 and sent["ListObjectsV2"] == 1 and sent["DeleteObject"] == 1
    assert rounds == 2
