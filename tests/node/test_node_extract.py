"""Safe extraction: hostile layer tars are refused and nothing lands outside the node cache."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from envship.node import NodeError, prepare
from kits.nodekit import (
    Blob,
    blob_from_members,
    dir_member,
    file_member,
    link_member,
    make_manifest,
    write_store,
)


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, None


def _fifo(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info, None


HOSTILE = {
    "dotdot": [dir_member("site-packages"), file_member("site-packages/../../evil", b"pwn")],
    "absolute": [file_member("/tmp/envship-evil-abs", b"pwn")],
    "symlink-out": [dir_member("site-packages"), link_member("site-packages/x", "../../../..")],
    "symlink-abs": [dir_member("site-packages"), link_member("site-packages/x", "/etc")],
    "symlink-chain": [  # d -> . is inside; t -> d/.. leaves the layer through it
        link_member("d", "."), link_member("t", "d/.."),
    ],
    "write-through-link": [
        dir_member("site-packages"), link_member("site-packages/up", ".."),
        link_member("site-packages/up2", "up/.."), file_member("site-packages/up2/evil", b"x"),
    ],
    "late-link-chain": [  # `a -> b/..` is inside until `b -> .` makes it the layer's parent
        link_member("a", "b/.."), link_member("b", "."), file_member("a/x/y/evil", b"x"),
    ],
    "hardlink-out": [
        dir_member("site-packages"), link_member("site-packages/h", "../../evil", True)
    ],
    "hardlink-abs": [
        dir_member("site-packages"), link_member("site-packages/h", "/etc/passwd", True)
    ],
    "device": [dir_member("site-packages"), _device("site-packages/null")],
    "fifo": [dir_member("site-packages"), _fifo("site-packages/pipe")],
    "duplicate": [file_member("site-packages/a.py", b"1"), file_member("site-packages/a.py", b"2")],
}


def _store(tmp_path: Path, blob: Blob) -> Path:
    return write_store(tmp_path / "store", make_manifest([blob]), [blob])


def _snapshot(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


@pytest.mark.parametrize("stdlib_filter", [True, False], ids=["data_filter", "own-checks"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_refused(
    tmp_path: Path, case: str, stdlib_filter: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not stdlib_filter:  # as on Pythons before tarfile.data_filter (3.9.16, 3.10.11, ...)
        monkeypatch.setattr("envship.node.extract._DATA_FILTER", None)
    blob = blob_from_members("deps", HOSTILE[case])
    uri = _store(tmp_path, blob)
    cache = tmp_path / "work" / "cache"
    cache.mkdir(parents=True)
    before = _snapshot(tmp_path) - _snapshot(cache)
    with pytest.raises(NodeError) as err:
        prepare(uri, cache_dir=cache)
    msg = str(err.value)
    assert "deps" in msg and "refusing member" in msg or "written twice" in msg, msg
    # nothing outside the cache, no committed layer, no env view, no temp leftovers
    after = _snapshot(tmp_path) - _snapshot(cache)
    assert after == before
    assert not Path("/tmp/envship-evil-abs").exists()
    assert os.listdir(cache / "layers") == []
    assert not (cache / "envs").exists() or os.listdir(cache / "envs") == []


def test_oversized_member_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = blob_from_members("deps", [file_member("site-packages/big.bin", b"x" * 5000)])
    uri = _store(tmp_path, blob)
    monkeypatch.setenv("ENVSHIP_NODE_MAX_MEMBER", "4096")
    with pytest.raises(NodeError, match="big.bin.*over the 4096"):
        prepare(uri, cache_dir=tmp_path / "cache")
    monkeypatch.setenv("ENVSHIP_NODE_MAX_MEMBER", "1M")
    monkeypatch.setenv("ENVSHIP_NODE_MAX_LAYER", "4K")
    with pytest.raises(NodeError, match="over the 4096 bytes limit"):
        prepare(uri, cache_dir=tmp_path / "cache")
    monkeypatch.delenv("ENVSHIP_NODE_MAX_LAYER")
    assert prepare(uri, cache_dir=tmp_path / "cache").env_id == make_manifest([blob]).env_id


def test_safe_links_inside_the_layer_are_kept(tmp_path: Path) -> None:
    blob = blob_from_members(
        "deps",
        [
            dir_member("site-packages"),
            dir_member("site-packages/pkg"),
            file_member("site-packages/pkg/__init__.py", b"V = 1\n"),
            link_member("site-packages/alias", "pkg"),
            link_member("site-packages/pkg/same.py", "site-packages/pkg/__init__.py", True),
        ],
    )
    view = prepare(_store(tmp_path, blob), cache_dir=tmp_path / "cache")
    layer = tmp_path / "cache" / "layers" / blob.hex / "site-packages"
    assert os.readlink(layer / "alias") == "pkg"
    same = layer / "pkg" / "same.py"
    assert same.stat().st_ino == (layer / "pkg" / "__init__.py").stat().st_ino
    assert view.env_id
