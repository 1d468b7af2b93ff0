"""The content fingerprint the archiver takes from the bytes it archives is the one a later
pack computes by reading the files: a cold pack reads each file once, and another venv of the
same contents still finds its blob."""

from __future__ import annotations

import os
from pathlib import Path

from envship.packing.archive import ContentKeys, write_blob
from envship.packing.buildcache import BuildCache, content_fingerprint
from envship.packing.layers import LayerEntry, LayerPlan


def _plan(root: Path) -> LayerPlan:
    site = root / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg-1.0.dist-info").mkdir()
    files = {
        "pkg/__init__.py": b"VALUE = 1\n",
        "pkg/big.bin": os.urandom(5 << 20),  # above the archiver's streaming threshold
        "pkg-1.0.dist-info/RECORD": b"pkg/__init__.py,sha256=x,10\npkg/big.bin,,\n",
    }
    for name, data in files.items():
        (site / name).write_bytes(data)
    tool = root / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_bytes(b"#!" + str(root / "bin" / "python").encode() + b"\nprint(1)\n")
    tool.chmod(0o755)
    entries = [
        LayerEntry("bin/tool", str(tool), "shebang"),
        LayerEntry("site-packages/pkg-1.0.dist-info/RECORD",
                   str(site / "pkg-1.0.dist-info/RECORD"), "record",
                   record_keep=frozenset({"pkg/__init__.py"})),
        LayerEntry("site-packages/pkg/__init__.py", str(site / "pkg/__init__.py")),
        LayerEntry("site-packages/pkg/big.bin", str(site / "pkg/big.bin")),
        LayerEntry("site-packages/pkg/link.py", "__init__.py", "symlink"),
    ]
    return LayerPlan("dist", tuple(sorted(entries)), "record", ("cpython", "x"),
                     ("pkg==1.0",))


def test_archiver_keys_give_the_fingerprint_reading_gives(tmp_path: Path) -> None:
    plan = _plan(tmp_path / "venv")
    keys = ContentKeys(frozenset(e.arcname for e in plan.entries if e.transform != "symlink"))
    write_blob(plan.entries, tmp_path / "blobs", content=keys)
    assert set(keys.keys) == keys.wanted  # every regular file, streamed or read whole
    assert content_fingerprint(plan, keys.keys) == content_fingerprint(plan)
    # an executable bit or one byte more is another content
    os.chmod(plan.entries[0].source, 0o644)
    assert content_fingerprint(plan) != content_fingerprint(plan, keys.keys)


def test_a_cold_cache_skips_content_lookups_until_it_holds_that_shape(tmp_path: Path) -> None:
    plan = _plan(tmp_path / "venv")
    cache = BuildCache(tmp_path / "cache")
    assert not cache.may_hold_contents(plan)
    blob = write_blob(plan.entries, cache.blob_dir)
    cache.store_by_content(content_fingerprint(plan), plan, blob)
    assert cache.may_hold_contents(plan)
    other = LayerPlan("dist", plan.entries, "record", ("cpython", "x"), ("pkg==1.1",))
    assert not cache.may_hold_contents(other)
