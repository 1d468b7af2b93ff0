"""Publish / tag against gc in every dangerous order, forced step by step (docs/store.md).

Each test builds the race the issue measured: an old blob no manifest references (its env was
removed) that a new ship re-uses while gc, with zero grace, collects it. The schedule pins the
order of the two sides' steps; afterwards the store must verify clean.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from envship.errors import StoreError
from envship.node.formats import env_key, provenance_key
from envship.store import Store, Timing, open_store
from envship.store.protocol import Sweep, write_sweep
from kits.schedule import Schedule, Step
from kits.storekit import FixtureEnv, make_env

FAST = Timing(settle=0.4, sweep_limit=5.0, poll=0.02)


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def protocol_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The protocol on a local path, memory:// and a real S3 API (the quick lane: local)."""
    if request.param == "local":
        return str(tmp_path / "store")
    if request.param == "memory":
        return f"memory://protocol/{uuid.uuid4().hex}"
    return str(request.getfixturevalue("s3_url"))


def opened(url: str, timing: Timing = FAST) -> Store:
    store = open_store(url)
    store.timing = timing
    return store


@dataclass
class Race:
    store: Store
    old: FixtureEnv  # published, then its manifest removed: its blobs are unreferenced
    new: FixtureEnv  # shares the deps blob with `old`
    shared: str  # the deps digest


def race(url: str, tmp_path: Path) -> Race:
    store = opened(url)
    old = make_env(tmp_path / "old", code="OLD = 1\n")
    new = make_env(tmp_path / "new", code="NEW = 1\n")
    store.publish(old.manifest, old.blobs)
    for key in (env_key, provenance_key):
        store.location.fs.rm_file(store.location.path(*key(old.manifest.env_id)))
    deps = new.manifest.layer("deps")
    assert deps is not None and old.manifest.layer("deps") == deps
    return Race(store, old, new, deps.digest)


def assert_clean(store: Store) -> None:
    result = store.verify(deep=True)
    assert result.ok and result.damage == (), result.damage
    assert result.leases == 0 and result.sweeps == 0, result


def has_blob(store: Store, digest: str) -> bool:
    store.location.fs.invalidate_cache()
    return bool(store.location.fs.exists(store.location.blob_path(digest)))


def gc(store: Store, **kw: object):  # type: ignore[no-untyped-def]
    return lambda step: store.gc(grace=0, step=step, **kw)


def pub(store: Store, env: FixtureEnv):  # type: ignore[no-untyped-def]
    return lambda step: store.publish(env.manifest, env.blobs, step=step)


# -- a ship re-using a blob gc is collecting ---------------------------------------------------
@pytest.mark.parametrize("order", [
    # gc has its candidates; the whole ship runs before gc announces anything.
    ["gc:marked", "pub:begin", "pub:released", "gc:announced"],
    # the ship sees the sweep still "marked": gc's second look will see the lease.
    ["gc:announced", "pub:begin", "pub:released", "gc:deleting"],
    # the ship's lease lands while gc settles; its manifest before gc's second look.
    ["gc:announced", "pub:lease-written", "gc:deleting", "pub:manifest-written"],
], ids=["before-announce", "while-marked", "lease-during-settle"])
def test_ship_before_second_look_is_spared(
    protocol_url: str, tmp_path: Path, order: list[str]
) -> None:
    r = race(protocol_url, tmp_path)
    out = Schedule(order).run(gc=gc(r.store), pub=pub(r.store, r.new))
    assert not isinstance(out["pub"], BaseException), out["pub"]
    assert not isinstance(out["gc"], BaseException), out["gc"]
    assert r.shared not in out["gc"].blobs_removed
    assert {x.kind: x.uploaded for x in out["pub"].layers}["deps"] is False  # re-used as is
    assert has_blob(r.store, r.shared)
    assert_clean(r.store)


def test_ship_during_deletion_waits_then_reuploads(protocol_url: str, tmp_path: Path) -> None:
    """gc looked again (no lease yet) and is about to delete the shared blob; the ship finds it
    present, sees the sweep deleting, waits for it, checks again and uploads it again."""
    r = race(protocol_url, tmp_path)
    sched = Schedule(["gc:looked-again", "pub:begin", "pub:waiting", "gc:deleted"])
    out = sched.run(gc=gc(r.store), pub=pub(r.store, r.new))
    assert r.shared in out["gc"].blobs_removed
    assert {x.kind: x.uploaded for x in out["pub"].layers}["deps"] is True
    assert out["pub"].waited > 0 and "pub:rechecking" in sched.seen
    assert_clean(r.store)


def test_ship_listing_sweeps_after_gc_is_done(protocol_url: str, tmp_path: Path) -> None:
    """The ship checks the blob (present) just before gc deletes it and lists sweeps just
    after gc finished: the marker gc keeps for `settle` tells it to check again."""
    r = race(protocol_url, tmp_path)
    slow = Timing(settle=2.0, sweep_limit=5.0, poll=0.02)  # room for the steps in the window
    r.store.timing = slow
    sched = Schedule(["gc:looked-again", "pub:begin", "pub:checks-done", "gc:done",
                      "pub:sweeps-listing"])
    out = sched.run(gc=gc(r.store), pub=pub(r.store, r.new))
    assert "pub:slow" not in sched.seen  # the one-round-trip path, not the fallback
    assert r.shared in out["gc"].blobs_removed
    assert {x.kind: x.uploaded for x in out["pub"].layers}["deps"] is True
    assert_clean(r.store)


def test_lease_landing_after_second_look_is_caught(protocol_url: str, tmp_path: Path) -> None:
    """The ship lists sweeps (none) and checks, but its lease lands only after gc looked
    again: the lease took longer than the window, so the ship looks again, in order."""
    r = race(protocol_url, tmp_path)
    sched = Schedule(["pub:sweeps-listed", "gc:announcing", "pub:checks-done",
                      "gc:looked-again", "pub:lease-writing"])
    out = sched.run(gc=gc(r.store), pub=pub(r.store, r.new))
    assert "pub:slow" in sched.seen
    assert not isinstance(out["pub"], BaseException), out["pub"]
    assert_clean(r.store)


class _NoSecondLook(Timing):
    """A publisher that trusts its one round trip whatever it took (the check removed)."""

    @property
    def window(self) -> float:
        return 1e9


def test_without_the_window_check_that_order_loses_the_blob(tmp_path: Path) -> None:
    """The same order as above with the publisher's window check removed: the manifest is
    written while its blob is gone. (Proves the schedule reproduces the issue's race.)"""
    r = race(str(tmp_path / "store"), tmp_path)
    weak = opened(r.store.url, _NoSecondLook(settle=0.4, sweep_limit=5.0, poll=0.02))
    sched = Schedule(["pub:sweeps-listed", "gc:announcing", "pub:checks-done",
                      "gc:looked-again", "pub:lease-writing", "gc:deleted", "pub:begin-upload"])

    def publish(step: Step) -> object:
        def hooked(name: str) -> None:
            step("begin-upload" if name == "claimed" else name)

        return weak.publish(r.new.manifest, r.new.blobs, step=hooked)

    sched.run(gc=gc(r.store), pub=publish)
    damage = r.store.verify().damage
    assert [(d.kind, d.digest) for d in damage] == [("missing-blob", r.shared)]


# -- re-shipping or tagging an env gc is removing ----------------------------------------------
def test_reship_of_a_doomed_env(protocol_url: str, tmp_path: Path) -> None:
    store = opened(protocol_url)
    env = make_env(tmp_path / "e")
    store.publish(env.manifest, env.blobs)
    env_id = env.manifest.env_id
    # Seen before gc's second look: the ship waits for it, holding its lease, which spares it.
    out = Schedule(["gc:announced", "pub:begin", "pub:waiting", "gc:looked-again"]).run(
        gc=gc(store, keep=0), pub=pub(store, env))
    assert out["gc"].envs_removed == () and out["gc"].envs_spared == (env_id,)
    assert store.env_ids() == [env_id]
    assert_clean(store)
    # After it: the ship waits, then publishes the env again.
    sched = Schedule(["gc:looked-again", "pub:begin", "pub:waiting", "gc:deleted"])
    out = sched.run(gc=gc(store, keep=0), pub=pub(store, env))
    assert out["gc"].envs_removed == (env_id,)
    assert out["pub"].manifest_written and store.env_ids() == [env_id]
    assert_clean(store)


def test_tag_of_a_doomed_env(protocol_url: str, tmp_path: Path) -> None:
    store = opened(protocol_url)
    env = make_env(tmp_path / "e")
    env_id = store.publish(env.manifest, env.blobs).env_id

    def tag(step: Step) -> str:
        return store.set_tag("prod", env_id, step=step)

    out = Schedule(["gc:announced", "tag:begin", "tag:tag-written", "gc:deleting"]).run(
        gc=gc(store, keep=0), tag=tag)
    assert out["gc"].envs_spared == (env_id,) and store.read_tag("prod") == env_id
    assert_clean(store)

    store.location.fs.rm_file(store.location.tag_path("prod"))
    out = Schedule(["gc:looked-again", "tag:begin", "tag:waiting", "gc:deleted"]).run(
        gc=gc(store, keep=0), tag=tag)
    assert isinstance(out["tag"], StoreError) and "not found" in str(out["tag"])
    assert store.tags() == {} and store.env_ids() == []
    assert_clean(store)


def test_two_gcs_and_a_ship(protocol_url: str, tmp_path: Path) -> None:
    r = race(protocol_url, tmp_path)
    sched = Schedule(["a:looked-again", "b:deleting", "pub:begin", "pub:waiting", "a:deleted",
                      "b:looked-again"])
    out = sched.run(a=gc(r.store), b=gc(r.store), pub=pub(r.store, r.new))
    for name in ("a", "b", "pub"):
        assert not isinstance(out[name], BaseException), (name, out[name])
    assert_clean(r.store)


# -- crashes: a ship or a gc killed half-way -------------------------------------------------
def test_killed_ship_lease_protects_then_expires(protocol_url: str, tmp_path: Path) -> None:
    r = race(protocol_url, tmp_path)
    # A ship that died after its lease: the lease stays; gc treats it as a root.
    from envship.store.protocol import take_lease

    take_lease(r.store.io, r.new.manifest.env_id, [r.shared], FAST)
    result = r.store.gc(grace=0)
    assert r.shared not in result.blobs_removed and result.leases_removed == 0
    # Once stale (older than its ttl plus the clock allowance) gc removes it.
    r.store.timing = Timing(settle=0.4, lease_ttl=0.0, clock_skew=0.0, poll=0.02)
    time.sleep(0.05)
    result = r.store.gc(grace=0)
    assert result.leases_removed == 1 and r.shared in result.blobs_removed
    assert_clean(r.store)


def test_killed_gc_marker_is_waited_out_then_removed(protocol_url: str, tmp_path: Path) -> None:
    r = race(protocol_url, tmp_path)
    # A gc that died while deleting the shared blob, with a 1 s limit.
    dead = Sweep("20260101T000000-deadbeef0000", "deleting", frozenset({r.shared}),
                 frozenset(), limit=1.0, deadline=time.time() + 1.0)
    write_sweep(r.store.io, dead)
    start = time.monotonic()
    result = r.store.publish(r.new.manifest, r.new.blobs)
    assert 0.9 < time.monotonic() - start < 10 and result.waited > 0.9
    assert not r.store.verify().damage
    # The next gc removes the dead marker (past its deadline by more than the allowances).
    r.store.timing = Timing(settle=0.4, clock_skew=0.0, poll=0.02)
    time.sleep(0.5)
    r.store.gc(grace=0)
    assert_clean(r.store)


def test_unreadable_lease_stops_gc(tmp_path: Path) -> None:
    store = opened(str(tmp_path / "store"))
    env = make_env(tmp_path / "e")
    store.publish(env.manifest, env.blobs)
    leases = tmp_path / "store" / "leases"
    leases.mkdir(exist_ok=True)
    (leases / f"{'a' * 64}.x.json").write_text("{")
    with pytest.raises(StoreError, match="lease"):
        store.gc(grace=0)


def test_warm_ship_leaves_nothing_behind(protocol_url: str, tmp_path: Path) -> None:
    store = opened(protocol_url)
    env = make_env(tmp_path / "e")
    store.publish(env.manifest, env.blobs)
    again = store.publish(env.manifest, env.blobs)
    assert again.bytes_sent == 0 and not again.manifest_written and again.waited == 0
    store.location.fs.invalidate_cache()
    names = [str(n) for n in store.location.fs.find(store.location.root)]
    assert not any("/leases/" in n or "/sweeps/" in n for n in names), names
    assert json.loads(store.location.fs.cat_file(store.location.env_path(
        env.manifest.env_id)))["layers"]
