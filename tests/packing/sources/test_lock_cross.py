"""Build for linux aarch64 on this x86_64 host: every native file in the layer is aarch64."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

import envship
from envship.packing.pipeline import PackResult
from kits.buildkit import EM_AARCH64, NUMPY, elf_machine


@pytest.fixture(scope="module")
def aarch64_env(lock_dir: Path, builders_cache: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> PackResult:
    return envship.pack(
        requirements=lock_dir / "requirements.txt", python_version="3.12",
        platform="manylinux_2_28_aarch64", code=False, cache_dir=builders_cache,
        output=tmp_path_factory.mktemp("aarch64") / "out",
    )


def test_every_native_file_is_aarch64(aarch64_env: PackResult) -> None:
    deps = aarch64_env.manifest.layer_of("numpy")
    assert deps is not None
    machines: dict[str, int] = {}
    with tarfile.open(aarch64_env.blobs[deps.digest]) as tar:
        for member in tar:
            if not member.isfile():
                continue
            fh = tar.extractfile(member)
            assert fh is not None
            machine = elf_machine(fh.read(64))
            if machine is not None:
                machines[member.name] = machine
    extensions = [n for n in machines if n.endswith(".so")]
    assert len(extensions) > 10, machines  # numpy's extension modules are there
    assert any("numpy/_core/_multiarray_umath" in n for n in extensions)
    wrong = {n: m for n, m in machines.items() if m != EM_AARCH64}
    assert not wrong, f"not aarch64: {wrong}"


def test_manifest_describes_the_target(aarch64_env: PackResult) -> None:
    m = aarch64_env.manifest
    assert (m.python.implementation, m.python.version, m.python.abi, m.python.platform) == (
        "cpython", "3.12", "cp312", "manylinux_2_28_aarch64")
    assert m.python.cache_tag == "cpython-312"
    assert [(lay.kind, lay.dists) for lay in m.layers] == [
        ("dist", (NUMPY,)), ("dist", ("six==1.17.0",))]
    names = {(d.name, d.version, d.source, d.layer) for d in m.distributions}
    assert ("numpy", NUMPY.split("==")[1], "index", m.layers[0].digest) in names
    assert ("six", "1.17.0", "index", m.layers[1].digest) in names
    # console scripts come from entry_points.txt, not as files
    assert m.entry_points["console_scripts"]["f2py"] == "numpy.f2py.f2py2e:main"


def test_another_python_leaves_bytecode_to_the_node(aarch64_env: PackResult) -> None:
    """No CPython 3.12 runs envship here: nothing is compiled, the layers say so."""
    assert [lay.bytecode for lay in aarch64_env.manifest.layers] == ["node", "node"]
    for lay in aarch64_env.manifest.layers:
        with tarfile.open(aarch64_env.blobs[lay.digest]) as tar:
            assert not [n for n in tar.getnames() if "__pycache__" in n or n.endswith(".pyc")]


def test_layer_has_no_host_traces(aarch64_env: PackResult) -> None:
    deps = aarch64_env.manifest.layer_of("numpy")
    assert deps is not None
    with tarfile.open(aarch64_env.blobs[deps.digest]) as tar:
        names = tar.getnames()
        assert not [n for n in names if n.startswith("data/bin/")], "console scripts stored"
        assert not [n for n in names if n.endswith(("direct_url.json", ".pyc", ".lock"))]
        assert all(n.startswith(("site-packages", "data")) for n in names)
        record = tar.extractfile(f"site-packages/{NUMPY.replace('==', '-')}.dist-info/RECORD")
        assert record is not None
        text = record.read().decode()
        # the installer's own marks are not the wheel's: a pip install gives the same blob
        assert not [n for n in names if n.endswith(("/INSTALLER", "/REQUESTED"))]
    rows = text.splitlines()
    assert rows == sorted(rows)
    assert "bin/f2py" not in text  # the wrapper (with this host's python path) is not shipped
    assert "/root" not in text and "/tmp" not in text
