"""The store's I/O tier: primitives on every backend, bounded reads, retry applied once, and
the capabilities each backend gets."""

from __future__ import annotations

import ast
import os
import re
import time
from pathlib import Path

import pytest

import envship
from envship.errors import EnvNotFound, StoreError
from envship.node.formats import BLOBS, LEASES, TAGS, tag_key
from envship.store import open_store
from envship.store.io import NotFound, Refused, RetryPolicy, StoreIO
from envship.store.io.capabilities import capabilities_of


def _io(url: str, total: float = 5.0) -> StoreIO:
    store = open_store(url)
    return StoreIO(store.location, RetryPolicy(total=total, initial=0.01))


def test_primitives_on_every_backend(store_url: str) -> None:
    io = _io(store_url)
    assert io.entries(LEASES) == [] and io.names(BLOBS) == []  # a missing folder is empty
    assert io.info(tag_key("x")) is None and not io.exists(tag_key("x"))
    with pytest.raises(NotFound, match="not found in store"):
        io.read(tag_key("x"), "tag 'x'")
    io.remove(tag_key("x"))  # missing: fine

    io.write(tag_key("a"), b'{"env": "1"}\n', "tag a")
    io.write(tag_key("b"), b"", "tag b")  # empty: S3 answers a ranged GET of it with 416
    assert io.names(TAGS) == ["a.json", "b.json"]  # no temp files left
    (entry,) = [e for e in io.entries(TAGS) if e.name == "a.json"]
    assert entry.key == tag_key("a") and entry.size == 13 and not entry.is_dir
    assert entry.mtime is None or abs(entry.mtime - time.time()) < 600
    assert io.read(tag_key("a"), "tag a") == b'{"env": "1"}\n'
    assert io.read(tag_key("b"), "tag b") == b""
    assert io.size(tag_key("a")) == 13 and io.exists(tag_key("a"))
    with pytest.raises(Refused, match="larger than 12 bytes"):
        io.read(tag_key("a"), "tag a", limit=12)
    assert io.read(tag_key("a"), "tag a", limit=13) == b'{"env": "1"}\n'

    io.remove_many([tag_key("a"), tag_key("b"), tag_key("gone")], "tags")
    assert io.names(TAGS) == []
    # the root lists its folders (what `store ls` checks a store by)
    io.write(tag_key("c"), b"{}", "tag c")
    assert TAGS[0] in {e.name for e in io.listing(()) or []}


def test_listing_is_never_from_the_cache(store_url: str) -> None:
    """Another process's writes must be seen at once, whatever fsspec cached."""
    io = _io(store_url)
    io.write(tag_key("a"), b"{}", "tag a")
    assert io.names(TAGS) == ["a.json"]
    io.fs.pipe_file(io.path(tag_key("b")), b"{}")  # behind StoreIO's back
    io.fs.dircache[io.path(TAGS)] = [{"name": io.path(tag_key("a")), "size": 2,
                                      "type": "file"}]  # a stale cached listing
    assert io.names(TAGS) == ["a.json", "b.json"]


def test_bounded_read_refuses_a_fifo_and_a_directory(tmp_path: Path) -> None:
    io = _io(str(tmp_path / "store"))
    (tmp_path / "store" / "tags").mkdir(parents=True)
    os.mkfifo(tmp_path / "store" / "tags" / "fifo.json")
    (tmp_path / "store" / "tags" / "dir.json").mkdir()
    start = time.monotonic()
    with pytest.raises(Refused, match="not a regular file"):
        io.read(tag_key("fifo"), "tag 'fifo'")  # would block forever if opened blocking
    with pytest.raises(Refused, match="not a regular file"):
        io.read(tag_key("dir"), "tag 'dir'")
    assert time.monotonic() - start < 5
    # readers of the store treat it as a bad file, not as a hang or a crash
    assert open_store(tmp_path / "store").tags() == {}


def test_retry_is_applied_once_per_primitive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    io = _io(str(tmp_path / "store"))
    io.write(tag_key("a"), b"{}", "tag a")
    calls: list[str] = []
    real = type(io.fs).info

    def flaky(fs: object, path: str, **kw: object) -> object:
        calls.append(path)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return real(fs, path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(type(io.fs), "info", flaky)
    assert io.size(tag_key("a")) == 2  # exists and size derive from info: one retry loop
    assert len(calls) == 3

    calls.clear()

    def denied(fs: object, path: str, **kw: object) -> object:
        calls.append(path)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(io.fs), "info", denied)
    with pytest.raises(StoreError, match="permission denied") as info:
        io.exists(tag_key("a"))
    assert len(calls) == 1  # not transient: no retry, mapped at once
    assert type(info.value) is StoreError and "in store" in str(info.value)


def test_a_deadline_stops_before_sending(tmp_path: Path) -> None:
    from envship.store.io import DeadlinePassed

    io = _io(str(tmp_path / "store"))
    io.write(tag_key("a"), b"{}", "tag a")
    with pytest.raises(DeadlinePassed):
        io.remove_many([tag_key("a")], "tags", before=time.monotonic() - 1)
    assert io.exists(tag_key("a"))


def test_capabilities_local_memory_and_s3(tmp_path: Path, s3_url: str) -> None:
    local = open_store(tmp_path).location.caps
    assert (local.local, local.atomic_rename, local.object_store, local.s3) == (
        True, True, False, None)
    memory = open_store("memory://caps").location.caps
    assert (memory.local, memory.atomic_rename, memory.s3) == (False, True, None)
    s3 = open_store(s3_url).location.caps
    assert (s3.local, s3.atomic_rename, s3.object_store) == (False, False, True)
    assert s3.s3 is not None and callable(s3.s3)
    # an object store without s3fs's raw client writes in place but has no S3 requests
    gs = capabilities_of("gs", object())
    assert gs.object_store and not gs.atomic_rename and gs.s3 is None


def test_a_missing_env_is_env_not_found(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(EnvNotFound, match="not found in store"):
        store.read_manifest("0" * 64)
    with pytest.raises(EnvNotFound, match="ship it first"):
        store.set_tag("prod", "0" * 64)


_PATHY = re.compile(r"(blobs|envs|tags|leases|sweeps|fingerprints)/|\.tar\.gz|^sha256$")
_FOLDER = re.compile(r"^(blobs|envs|tags|leases|sweeps|fingerprints)$")
_PATH_CALLS = {"path", "url_of", "entries", "names", "listing", "ls", "info", "exists", "read",
               "write", "remove", "join", "joinpath"}


def test_store_spells_no_path_of_the_layout() -> None:
    """Every store path comes from envship.node.formats (docstrings may describe them)."""
    root = Path(envship.__file__).parent / "store"
    bad = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                and n.body and isinstance(n.body[0], ast.Expr)}
        as_path = {id(arg) for n in ast.walk(tree) if isinstance(n, ast.Call)
                   and getattr(n.func, "attr", getattr(n.func, "id", "")) in _PATH_CALLS
                   for arg in n.args}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) not in docs and _PATHY.search(node.value) or (
                    id(node) in as_path and _FOLDER.match(node.value)):
                bad.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert bad == []


def test_the_s3_client_test_is_made_in_one_place() -> None:
    root = Path(envship.__file__).parent / "store"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if "call_s3" in p.read_text())
    assert users == ["io/capabilities.py"]


def test_a_linked_blob_is_young_while_it_is_written(tmp_path: Path) -> None:
    """A local store hard-links build-cache blobs in; the link must not carry the old mtime,
    or a concurrent gc takes the temp name for a dead upload's leftover and deletes it."""
    from kits.storekit import make_env

    env = make_env(tmp_path / "blobs")
    for blob in env.blobs.values():
        os.utime(blob, (time.time() - 7200, time.time() - 7200))  # built two hours ago
    store = open_store(tmp_path / "store")
    store.publish(env.manifest, env.blobs)
    for digest, local in env.blobs.items():
        stored = Path(store.location.blob_path(digest))
        assert stored.stat().st_ino == local.stat().st_ino  # linked, not copied
        assert time.time() - stored.stat().st_mtime < 600


def test_a_write_whose_temp_a_gc_removed_starts_over(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`gc --grace 0s` removes temp files it finds, including those of writes in flight: the
    write (blob, manifest, lease) starts over under a new temp name instead of failing."""
    from envship.store.io import transfer
    from kits.storekit import make_env

    real = transfer._finish
    taken: dict[str, str] = {}

    def gc_meanwhile(loc: object, tmp: str, final: str, size: int) -> None:
        if final not in taken:  # every file's first temp name is taken away
            taken[final] = tmp
            os.unlink(tmp)
        real(loc, tmp, final, size)  # type: ignore[arg-type]

    monkeypatch.setattr(transfer, "_finish", gc_meanwhile)
    env = make_env(tmp_path / "blobs")
    store = open_store(tmp_path / "store")
    result = store.publish(env.manifest, env.blobs)
    kinds = {Path(final).parent.name for final in taken}
    assert kinds == {"leases", "sha256", "envs"} and result.manifest_written
    assert store.verify(deep=True).ok
    assert not [p for p in (tmp_path / "store").rglob("*") if ".tmp-" in p.name]
