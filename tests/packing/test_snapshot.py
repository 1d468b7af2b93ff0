"""Snapshot details: probe-answer reuse, progress reports, script shebangs, selection names."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from envship import pack
from envship.packing.archive import SHEBANG, _rewrite_shebang
from envship.packing.pipeline import PackResult
from envship.packing.selection import DEFAULT_EXCLUDED
from envship.packing.sources.snapshot import canonical_name, take_snapshot
from kits.support import make_venv, run, uv_bin


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("snap") / "venv"
    make_venv(venv)
    return venv


def test_probe_answer_reused_until_site_packages_changes(small: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = pack(small, cache_dir=cache)
    assert len(list((cache / "probes").glob("*.json"))) == 1
    assert pack(small, cache_dir=cache).env_id == first.env_id
    run([uv_bin(), "pip", "install", "-q", "-p", str(small / "bin" / "python"), "py4j"])
    after = pack(small, include=["py4j"], cache_dir=cache)
    assert "py4j" in {d.name for d in after.manifest.distributions}
    py4j = after.manifest.layer_of("py4j")
    assert py4j is not None and after.built[py4j.digest] is True
    assert sum(after.built.values()) == 1  # only the new distribution's layer is archived
    run([uv_bin(), "pip", "uninstall", "-q", "-p", str(small / "bin" / "python"), "py4j"])
    assert pack(small, cache_dir=cache).env_id == first.env_id


def test_progress_callback_reports_each_built_layer(small: Path, tmp_path: Path) -> None:
    events: list[tuple[str, int, int]] = []
    result = pack(small, cache_dir=tmp_path / "cache",
                  progress=lambda kind, done, total: events.append((kind, done, total)))
    for ref in result.manifest.layers:
        label = f"{ref.kind} {', '.join(ref.dists)}" if ref.dists else ref.kind
        assert (label, ref.files, ref.files) in events
    assert all(0 < done <= total for _, done, total in events)
    events.clear()
    pack(small, cache_dir=tmp_path / "cache", progress=lambda *a: events.append(a))
    assert events == []  # nothing archived on a warm pack


def test_scripts_get_portable_shebang(sample_pack: PackResult) -> None:
    ref = sample_pack.manifest.layer_of("pip")
    assert ref is not None
    with tarfile.open(sample_pack.blobs[ref.digest], "r:gz") as tar:
        scripts = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("data/bin/")]
        assert scripts, "pip installs a pip3.X script that is not an entry point"
        for member in scripts:
            fh = tar.extractfile(member)
            assert fh is not None
            head = fh.read().split(b"\n", 1)[0]
            if b"python" in head:
                assert head == SHEBANG, member.name


def test_rewrite_shebang_forms() -> None:
    assert _rewrite_shebang(b"#!/a/venv/bin/python3.11\nimport x\n") == SHEBANG + b"\nimport x\n"
    trampoline = b"#!/bin/sh\n'''exec' \"/very/long/python\" \"$0\" \"$@\"\n' '''\nimport x\n"
    assert _rewrite_shebang(trampoline) == SHEBANG + b"\nimport x\n"
    assert _rewrite_shebang(b"#!/bin/bash\necho hi\n") == b"#!/bin/bash\necho hi\n"
    assert _rewrite_shebang(b"\x7fELF...") == b"\x7fELF..."


def test_snapshot_facts(small: Path) -> None:
    snap = take_snapshot(small)
    assert snap.prefix == str(small.resolve())
    assert snap.python.abi.startswith("cp3")
    assert snap.python.platform.endswith("x86_64") or snap.python.platform.endswith("aarch64")
    assert {"pip", "setuptools"} <= {d.name for d in snap.distributions}
    assert all(d.source == "index" for d in snap.distributions)
    assert canonical_name("Py4J") == "py4j" and canonical_name("a_b.c") == "a-b-c"
    assert set(DEFAULT_EXCLUDED) == {"pyspark", "py4j"}


def test_gzip_bytes_depend_on_content_not_on_write_sizes(tmp_path: Path) -> None:
    """The threaded compressor cuts blocks where it is written to; BlockWriter fixes the cuts."""
    import random

    from isal import igzip_threaded

    from envship.packing.archive import BlockWriter

    data = random.Random(7).randbytes(3_500_000) + b"envship " * 300_000
    outputs = []
    for seed, sizes in ((1, (512, 70_000)), (2, (1, 3_000_000)), (3, (1 << 20, 1 << 20))):
        path = tmp_path / f"{seed}.gz"
        rnd = random.Random(seed)
        gz = igzip_threaded.open(path, "wb", compresslevel=1, threads=2)
        out = BlockWriter(gz)
        pos = 0
        while pos < len(data):
            step = rnd.randint(*sizes)
            out.write(data[pos:pos + step])
            pos += step
        out.finish()
        gz.close()
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
