"""Package-granular blobs: envs that differ by a package differ by that package's blob only;
every blob (bytecode included) is byte-identical across envs, dirs, users and HOME."""

from __future__ import annotations

import json
import logging
import marshal
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from envship import pack
from envship.packing.bytecode import Compiler, compile_layers
from envship.packing.diff import diff_manifests
from envship.packing.layers import LayerEntry, LayerPlan
from envship.packing.pipeline import PackResult
from envship.store import open_store
from kits.packkit import blob_names, layer_names, layer_ref
from kits.support import cpython_versions, make_venv, run, uv_bin

ENVSHIP = str(Path(sys.executable).parent / "envship")
BASE = ["six==1.16.0", "idna==3.7"]
SMALL = "attrs==24.2.0"
TAG = sys.implementation.cache_tag


@dataclass(frozen=True)
class Envs:
    a: Path  # six + idna
    a_plus: Path  # A + attrs
    a_upgraded: Path  # A with idna 3.10
    a_elsewhere: Path  # A again, at another path


def _venv(path: Path, packages: list[str]) -> Path:
    run([uv_bin(), "venv", "-q", "-p", sys.executable, str(path)])
    run([uv_bin(), "pip", "install", "-q", "-p", str(path / "bin" / "python"), *packages])
    return path


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Envs:
    base = tmp_path_factory.mktemp("dedup")
    return Envs(
        _venv(base / "a", BASE),
        _venv(base / "a-plus", [*BASE, SMALL]),
        _venv(base / "a-up", ["six==1.16.0", "idna==3.10"]),
        _venv(base / "deeper" / "elsewhere" / "a", BASE),
    )


@pytest.fixture(scope="module")
def packs(envs: Envs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PackResult]:
    """Each env packed with its OWN fresh build cache: equal blobs are built independently."""
    root = tmp_path_factory.mktemp("dedup-packs")
    return {name: pack(getattr(envs, name), cache_dir=root / f"cache-{name}",
                       output=root / f"out-{name}")
            for name in ("a", "a_plus", "a_upgraded", "a_elsewhere")}


def _by_dist(result: PackResult) -> dict[str, str]:
    return {d.name: d.layer for d in result.manifest.distributions}


def test_one_more_package_differs_by_its_blob_only(packs: dict[str, PackResult]) -> None:
    a, b = packs["a"], packs["a_plus"]
    d = diff_manifests(a.manifest, b.manifest)
    attrs = layer_ref(b, "attrs")
    assert [x.digest for x in d.blobs_only_b] == [attrs.digest]
    assert d.blobs_only_a == ()
    assert d.fetch_bytes == attrs.size
    assert d.added == (("attrs", "24.2.0"),)
    for name, digest in _by_dist(a).items():  # six and idna: the very same blobs
        assert _by_dist(b)[name] == digest


def test_upgrade_differs_by_the_upgraded_blob_only(packs: dict[str, PackResult]) -> None:
    a, c = packs["a"], packs["a_upgraded"]
    d = diff_manifests(a.manifest, c.manifest)
    assert [x.label for x in d.blobs_only_b] == ["dist idna"]
    assert [x.label for x in d.blobs_only_a] == ["dist idna"]
    assert d.changed == (("idna", "3.7", "3.10"),)
    assert d.layers == {"dist idna": "changed", "dist six": "same"}
    assert _by_dist(a)["six"] == _by_dist(c)["six"]


def test_store_grows_by_the_new_blob_only(packs: dict[str, PackResult], tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    first = store.publish(packs["a"].manifest, packs["a"].blobs)
    assert first.bytes_sent == sum(lay.size for lay in packs["a"].manifest.layers)
    plus = store.publish(packs["a_plus"].manifest, packs["a_plus"].blobs)
    assert plus.bytes_sent == layer_ref(packs["a_plus"], "attrs").size
    up = store.publish(packs["a_upgraded"].manifest, packs["a_upgraded"].blobs)
    assert up.bytes_sent == layer_ref(packs["a_upgraded"], "idna").size
    blobs = list((tmp_path / "store" / "blobs" / "sha256").iterdir())
    assert len(blobs) == 4  # six, idna 3.7, idna 3.10, attrs


def test_same_env_at_another_path_gives_identical_blobs(packs: dict[str, PackResult]) -> None:
    a, e = packs["a"], packs["a_elsewhere"]
    assert a.env_id == e.env_id
    for ref in a.manifest.layers:
        assert a.blobs[ref.digest].read_bytes() == e.blobs[ref.digest].read_bytes()


def _pycs(result: PackResult, name: str) -> dict[str, bytes]:
    ref = layer_ref(result, name)
    out = {}
    with tarfile.open(result.blobs[ref.digest]) as tar:
        for m in tar.getmembers():
            if m.name.endswith(".pyc"):
                fh = tar.extractfile(m)
                assert fh is not None
                out[m.name] = fh.read()
    return out


def test_blobs_hold_hash_based_pycs_with_canonical_filenames(
    packs: dict[str, PackResult],
) -> None:
    import importlib.util

    a = packs["a"]
    names = set(layer_names(a, "idna"))
    pycs = _pycs(a, "idna")
    sources = {n for n in names if n.startswith("site-packages/") and n.endswith(".py")}
    assert len(pycs) == len(sources) > 5  # one beside every module
    for arc, data in pycs.items():
        head, _, tail = arc.rpartition("/__pycache__/")
        assert tail.endswith(f".{TAG}.pyc") and f"{head}/{tail[:-len(TAG) - 5]}.py" in sources
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked
        code = marshal.loads(data[16:])
        rel = f"{head}/{tail[:-len(TAG) - 5]}.py".removeprefix("site-packages/")
        assert code.co_filename == rel  # relative to site-packages: no pack-time path
    assert layer_ref(a, "idna").bytecode == "packed"


def test_pack_in_another_home_user_dir_gives_byte_identical_blobs(
    envs: Envs, packs: dict[str, PackResult], tmp_path: Path
) -> None:
    """The CLI in a clean environment: other HOME, user, cwd, TZ, umask, PYTHONHASHSEED."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "USER": "nobody-else",
           "LOGNAME": "nobody-else", "TZ": "America/Lima", "LANG": "C",
           "PYTHONHASHSEED": "12345", "ENVSHIP_HOME": str(home / "envship")}
    proc = subprocess.run(
        ["sh", "-c", 'umask 077 && exec "$@"', "sh", ENVSHIP, "pack", "--python",
         str(envs.a_plus), "-o", "out", "--json"],
        cwd=home, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    ref = packs["a_plus"]
    assert data["env_id"] == ref.env_id
    for layer in data["layers"]:
        assert layer["built"]
        assert Path(layer["path"]).read_bytes() == ref.blobs[layer["digest"]].read_bytes()


def test_source_env_bytecode_gives_the_same_blobs(
    envs: Envs, packs: dict[str, PackResult], tmp_path: Path
) -> None:
    """A venv whose installer wrote its own (timestamp) pycs packs to the same blobs."""
    compiled = tmp_path / "compiled"
    run([uv_bin(), "venv", "-q", "-p", sys.executable, str(compiled)])
    run([uv_bin(), "pip", "install", "-q", "--compile-bytecode", "-p",
         str(compiled / "bin" / "python"), *BASE])
    assert list(compiled.rglob("__pycache__/*.pyc"))
    result = pack(compiled, cache_dir=tmp_path / "cache")
    assert result.env_id == packs["a"].env_id


def test_module_that_does_not_compile_and_test_suites_ship_without_pyc(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    venv = make_venv(tmp_path / "venv").parent.parent
    site = next((venv / "lib").glob("python3.*/site-packages"))
    (site / "py2mod.py").write_text('print "python 2 only"\n')
    (site / "okmod.py").write_text("X = {'a', 'b', 'c'}\n")
    for rel in ("withtests/__init__.py", "withtests/tests/__init__.py",
                "withtests/sub/test/test_b.py", "withtests/testing.py"):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text("Y = 1\n")
    with caplog.at_level(logging.DEBUG, logger="envship.packing.bytecode"):
        result = pack(venv, cache_dir=tmp_path / "cache")
    names = set(layer_names(result, "stray"))
    assert "site-packages/py2mod.py" in names and "site-packages/okmod.py" in names
    assert f"site-packages/__pycache__/okmod.{TAG}.pyc" in names
    assert f"site-packages/__pycache__/py2mod.{TAG}.pyc" not in names
    # test suites are packed as sources only; a module merely named like one is compiled
    assert {"site-packages/withtests/tests/__init__.py",
            "site-packages/withtests/sub/test/test_b.py"} <= names
    pycs = {n for n in names if n.startswith("site-packages/withtests/") and n.endswith(".pyc")}
    assert pycs == {f"site-packages/withtests/__pycache__/__init__.{TAG}.pyc",
                    f"site-packages/withtests/__pycache__/testing.{TAG}.pyc"}
    assert any("py2mod.py" in r.getMessage() and "SyntaxError" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("python", cpython_versions() or [sys.executable])
def test_marshal_output_independent_of_worker_state(python: str, tmp_path: Path) -> None:
    """FLAG_REF depends on refcounts (3.10 and 3.13 differ with the process's state) and
    frozensets on the hash seed: the same sources compiled in another order, split over
    other workers, give the same bytes on each CPython 3.10-3.13 found here."""
    import envship.packing.bytecode as bc

    probe = ("import sys, sysconfig; print(sys.implementation.cache_tag); "
             "print(sysconfig.get_path('stdlib'))")
    tag, stdlib = run([python, "-c", probe]).stdout.split()
    names = ["argparse.py", "typing.py", "dataclasses.py", "enum.py", "json/decoder.py",
             "email/_header_value_parser.py", "asyncio/base_events.py", "inspect.py"]
    entries = [LayerEntry(f"site-packages/{n}", f"{stdlib}/{n}") for n in names]
    compiler = Compiler(python, tag)

    def compiled(order: list[LayerEntry], workers: int, work: Path) -> dict[str, bytes]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(bc.WORKERS_ENV, str(workers))
            mp.setattr(bc, "_BATCH_BYTES", 1 << 16)  # a batch or two per module
            plan = LayerPlan("dist", tuple(order), "record")
            (out,) = compile_layers(compiler, [plan], work)
        return {e.arcname: Path(e.source).read_bytes() for e in out}

    first = compiled(entries, 1, tmp_path / "one")
    again = compiled(entries[::-1], 3, tmp_path / "three")
    # each worker process leaves its stderr file: the second run was split over several
    assert len(list((tmp_path / "three").glob("worker-*.err"))) >= 2
    alone = {}
    for e in entries[:3]:
        alone.update(compiled([e], 1, tmp_path / f"alone-{len(alone)}"))
    assert len(first) == len(names)
    assert first == again
    assert all(first[k] == v for k, v in alone.items())


_HOLDING = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("worker", sys.argv[1])
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)
source, out = sys.argv[2], sys.argv[3]
flags = (1).to_bytes(4, "little")
worker._compile_one(source, "json/decoder.py", out + ".alone", flags)
# what a cache of the process might hold: every name and constant of the same module
held = compile(open(source, "rb").read(), "json/decoder.py", "exec")
worker._compile_one(source, "json/decoder.py", out + ".held", flags)
"""


@pytest.mark.parametrize("python", cpython_versions() or [sys.executable])
def test_pyc_bytes_do_not_depend_on_what_the_process_holds(python: str, tmp_path: Path) -> None:
    """The same module compiled while the process holds references to its names (CPython
    3.10's method cache does, by address) gives the same bytes: marshal's FLAG_REF must not
    follow refcounts the worker does not control."""
    from envship.packing import compile_worker

    stdlib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"]
                 ).stdout.strip()
    script = tmp_path / "holding.py"
    script.write_text(_HOLDING)
    out = tmp_path / "decoder"
    run([python, "-S", "-s", "-B", str(script), compile_worker.__file__,
         f"{stdlib}/json/decoder.py", str(out)], env={"PYTHONHASHSEED": "0"})
    alone = Path(f"{out}.alone").read_bytes()
    assert alone[16:] and alone == Path(f"{out}.held").read_bytes()


def test_conflicting_path_goes_to_one_distribution(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two distributions install the same file: it is packed once, with the one whose RECORD
    hash matches what is on disk, and a warning says so."""
    for name, text in (("clasha", "A"), ("clashb", "B")):
        proj = tmp_path / name
        (proj / name).mkdir(parents=True)
        (proj / name / "__init__.py").write_text("")
        (proj / "shared_mod.py").write_text(f"WHO = {text!r}\n")
        (proj / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "1.0"\n'
            '[build-system]\nrequires = ["setuptools>=64"]\n'
            'build-backend = "setuptools.build_meta"\n'
            f'[tool.setuptools]\npackages = ["{name}"]\npy-modules = ["shared_mod"]\n')
    venv = make_venv(tmp_path / "venv").parent.parent
    py = str(venv / "bin" / "python")
    run([uv_bin(), "pip", "install", "-q", "-p", py, str(tmp_path / "clasha")])
    run([uv_bin(), "pip", "install", "-q", "-p", py, str(tmp_path / "clashb")])  # overwrites
    with caplog.at_level(logging.WARNING, logger="envship"):
        result = pack(venv, cache_dir=tmp_path / "cache")
    a, b = layer_ref(result, "clasha"), layer_ref(result, "clashb")
    assert "site-packages/shared_mod.py" not in blob_names(result, a)
    assert "site-packages/shared_mod.py" in blob_names(result, b)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "site-packages/shared_mod.py is installed by clasha==1.0 and clashb==1.0" in warned
    assert "packing it with clashb==1.0" in warned
    with tarfile.open(result.blobs[a.digest]) as tar:
        record = tar.extractfile("site-packages/clasha-1.0.dist-info/RECORD")
        assert record is not None and b"shared_mod.py" not in record.read()


def test_same_dist_in_another_venv_is_not_rebuilt(
    envs: Envs, packs: dict[str, PackResult], tmp_path: Path
) -> None:
    """The build cache finds a distribution by its contents too: A + attrs, packed after A
    with A's cache, archives (and compiles) attrs only, though its venv is another one."""
    cache = tmp_path / "cache"
    first = pack(envs.a, cache_dir=cache)
    assert all(first.built.values())
    second = pack(envs.a_plus, cache_dir=cache)
    built = {d.name for d in second.manifest.distributions if second.built[d.layer]}
    assert built == {"attrs"}
    assert {d.layer for d in first.manifest.distributions} <= set(second.built)


def test_cli_inspect_and_diff_show_blobs_and_fetch_bytes(packs: dict[str, PackResult]) -> None:
    a, c = packs["a"], packs["a_upgraded"]
    assert a.output is not None and c.output is not None
    shown = run([ENVSHIP, "inspect", str(a.output)]).stdout
    flat = " ".join(shown.split())
    assert "envship.manifest/3" in flat and "packed" in flat
    idna = layer_ref(a, "idna")
    assert "idna==3.7" in flat and idna.digest[7:23] in flat
    differ = subprocess.run([ENVSHIP, "diff", str(a.output), str(c.output)],
                            capture_output=True, text=True)
    assert differ.returncode == 1, differ.stderr  # as diff(1): 1 = the envs differ
    out = " ".join(differ.stdout.split())
    assert "~ idna 3.7 -> 3.10" in out and "dist idna layer: changed" in out
    new = layer_ref(c, "idna")
    assert "fetches 1 blob," in out and f"({new.size} bytes)" in out
    data = json.loads(subprocess.run([ENVSHIP, "diff", str(a.output), str(c.output), "--json"],
                                     capture_output=True, text=True).stdout)
    assert data["fetch_bytes"] == new.size
    assert [b["digest"] for b in data["blobs_only_in_b"]] == [new.digest]


def test_edit_recompiles_only_the_edited_module(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytecode is cached by source: a one-line edit compiles that one module again."""
    from kits.support import write_sample_project

    project = write_sample_project(tmp_path / "pyclib", name="pyclib")
    venv = make_venv(tmp_path / "venv", [], [project]).parent.parent
    cache = tmp_path / "cache"
    pack(venv, cache_dir=cache)
    init = project / "src" / "pyclib" / "__init__.py"
    init.write_text(init.read_text().replace("VALUE = 1", "VALUE = 2"))
    with caplog.at_level(logging.INFO, logger="envship.packing.bytecode"):
        result = pack(venv, cache_dir=cache)
    assert [r.getMessage().split(" with ")[0] for r in caplog.records
            if r.getMessage().startswith("compiling")] == ["compiling 1 modules"]
    names = set(layer_names(result, "pyclib"))
    assert f"site-packages/pyclib/__pycache__/extra.{TAG}.pyc" in names
    assert f"site-packages/pyclib/__pycache__/__init__.{TAG}.pyc" in names


def test_compile_worker_that_dies_is_a_clear_error(tmp_path: Path) -> None:
    from envship.errors import PackError

    src = tmp_path / "m.py"
    src.write_text("X = 1\n")
    plan = LayerPlan("dist", (LayerEntry("site-packages/m.py", str(src)),), "record")
    with pytest.raises(PackError, match=r"compiling bytecode with /bin/false failed \(exit 1"):
        compile_layers(Compiler("/bin/false", TAG), [plan], tmp_path / "work")


def test_compile_workers_follow_the_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import envship.packing.bytecode as bc
    from envship.errors import PackError

    monkeypatch.delenv(bc.WORKERS_ENV, raising=False)
    cpus = os.sched_getaffinity(0)
    assert bc.worker_count() == min(len(cpus), 8)
    try:  # as under `taskset -c N` or a one-CPU cpuset
        os.sched_setaffinity(0, {min(cpus)})
        assert bc.worker_count() == 1
    finally:
        os.sched_setaffinity(0, cpus)
    monkeypatch.setenv(bc.WORKERS_ENV, "12")
    assert bc.worker_count() == 12
    src = tmp_path / "m.py"
    src.write_text("X = 1\n")
    plan = LayerPlan("dist", (LayerEntry("site-packages/m.py", str(src)),), "record")
    for bad in ("0", "two"):
        monkeypatch.setenv(bc.WORKERS_ENV, bad)
        with pytest.raises(PackError, match=rf"ENVSHIP_PACK_WORKERS='{bad}': give a number"):
            compile_layers(Compiler(sys.executable, TAG), [plan], tmp_path / "work")


def test_pip_and_uv_installs_of_the_same_wheels_give_the_same_blobs(
    envs: Envs, packs: dict[str, PackResult], tmp_path: Path
) -> None:
    """INSTALLER / REQUESTED are the installer's, not the wheel's: a pip-installed venv (with
    the pycs pip compiles and its own RECORD rows) packs to env A's blobs, byte for byte."""
    venv = tmp_path / "pip-venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = str(venv / "bin" / "python")
    # pip from the test venv installs into the new one (--prefix keeps its RECORD and scripts
    # as a pip inside that venv would write them; pip byte-compiles as it always does).
    run([uv_bin(), "pip", "install", "-q", "-p", py, "pip"])
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *BASE])
    site = next((venv / "lib").glob("python3.*/site-packages"))
    assert (site / "six-1.16.0.dist-info" / "INSTALLER").read_text().strip() == "pip"
    assert list(site.glob("**/__pycache__/*.pyc"))  # pip compiled: taken, same bytes
    got = pack(venv, cache_dir=tmp_path / "cache", output=tmp_path / "out")
    want = packs["a"]
    by_dist = {d.name: d.layer for d in got.manifest.distributions}
    for name in ("six", "idna"):
        assert by_dist[name] == _by_dist(want)[name], name
    # The envs differ only by what really differs: pip itself is in one of them.
    names = {d.name for d in got.manifest.distributions} - {d.name for d in
                                                             want.manifest.distributions}
    assert names <= {"pip"}
