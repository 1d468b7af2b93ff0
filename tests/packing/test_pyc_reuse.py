"""Bytecode an installer wrote is taken when it is provably the source's, and gives the very
bytes a fresh compile gives (one canonical form); anything else is compiled."""

from __future__ import annotations

import base64
import hashlib
import logging
import marshal
import os
import shutil
import sys
import tarfile
from importlib.util import MAGIC_NUMBER, source_hash
from pathlib import Path

import pytest

import envship.packing.bytecode as bc
from envship import pack
from envship.packing.bytecode import CompilePool, Compiler, installed_pyc
from envship.packing.layers import LayerEntry, LayerPlan
from envship.packing.pipeline import PackResult
from kits.packkit import layer_ref
from kits.support import cpython_versions, run, uv_bin
from kits.wheelkit import write_wheel

TAG = sys.implementation.cache_tag
COMPILER = Compiler(sys.executable, TAG)


def _compiled(plans: list[LayerPlan], work: Path, compiler: Compiler = COMPILER
              ) -> tuple[dict[str, bytes], int]:
    """(pyc bytes by arcname, modules whose installer's pyc was taken)."""
    with CompilePool(compiler, work) as pool:
        done = dict(pool.compile(plans))
        reused = pool.reused
    return {e.arcname: Path(e.source).read_bytes() for i in done for e in done[i]}, reused


def _value(pyc: bytes) -> object:
    scope: dict[str, object] = {}
    exec(marshal.loads(pyc[16:]), scope)
    return scope["VALUE"]


def _forge(source: Path, stamp: bytes, flags: int = 0, name: str = "") -> Path:
    """A pyc for *source* with header *stamp* whose code says ``VALUE = 3``: taken, it shows."""
    pyc = Path(installed_pyc(str(source), TAG))
    if name:
        pyc = pyc.with_name(name)
    pyc.parent.mkdir(exist_ok=True)
    code = compile("VALUE = 3\n", str(source), "exec")
    pyc.write_bytes(MAGIC_NUMBER + flags.to_bytes(4, "little") + stamp + marshal.dumps(code))
    return pyc


def _timestamp(source: Path) -> bytes:
    st = source.stat()
    return (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + st.st_size.to_bytes(4, "little")


def test_installed_pyc_is_taken_only_when_it_is_the_sources(tmp_path: Path) -> None:
    """Each module's pyc below holds other code than its source (``VALUE = 3``), so the
    packed value tells whether it was taken: only with the right magic number and source stamp
    (timestamp or hash), written after the interpreter, plain (not opt-1), in a dist layer,
    and, where the installer recorded the source's hash, for a source that still has it."""
    site = tmp_path / "site-packages"
    site.mkdir()
    mods = {}
    for name in ("ok_time", "ok_hash", "edited_time", "edited_hash", "old", "magic", "opt",
                 "in_code", "recorded", "recorded_edited"):
        mods[name] = site / f"{name}.py"
        mods[name].write_text("VALUE = 1\n")
    _forge(mods["ok_time"], _timestamp(mods["ok_time"]))
    _forge(mods["ok_hash"], source_hash(b"VALUE = 1\n"), flags=1)
    # edited after install: same size, the mtime moved on / the hash of the old text
    _forge(mods["edited_time"], _timestamp(mods["edited_time"]))
    _forge(mods["edited_hash"], source_hash(b"VALUE = 1\n"), flags=3)
    for name in ("edited_time", "edited_hash"):
        mods[name].write_text("VALUE = 2\n")
        os.utime(mods[name], (1e9 + 10, 1e9 + 10))
    _forge(mods["old"], _timestamp(mods["old"]))
    os.utime(installed_pyc(str(mods["old"]), TAG), (1e9, 1e9))  # before the interpreter
    bad = _forge(mods["magic"], _timestamp(mods["magic"]))
    bad.write_bytes(b"\0\0\r\n" + bad.read_bytes()[4:])
    _forge(mods["opt"], _timestamp(mods["opt"]), name=f"opt.{TAG}.opt-1.pyc")
    _forge(mods["in_code"], _timestamp(mods["in_code"]))
    # RECORD says the source is "VALUE = 1"; edited in the same second at the same size (or its
    # mtime put back, as `cp -p` or an editor may): the stamp still matches, the hash does not
    _forge(mods["recorded"], _timestamp(mods["recorded"]))
    _forge(mods["recorded_edited"], _timestamp(mods["recorded_edited"]))
    st = mods["recorded_edited"].stat()
    mods["recorded_edited"].write_text("VALUE = 2\n")
    os.utime(mods["recorded_edited"], ns=(st.st_atime_ns, st.st_mtime_ns))
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"VALUE = 1\n").digest()).rstrip(b"=")
    known = dict.fromkeys(("recorded", "recorded_edited"), "sha256=" + digest.decode())

    def plan(kind: str, names: list[str]) -> LayerPlan:
        return LayerPlan(kind, tuple(LayerEntry(f"site-packages/{n}.py", str(mods[n]),
                                                known_hash=known.get(n))
                                     for n in names), "record")

    pycs, reused = _compiled([plan("dist", [n for n in mods if n != "in_code"]),
                              plan("code", ["in_code"])], tmp_path / "work")
    values = {arc.rpartition("/")[2].partition(".")[0]: _value(data) for arc, data in pycs.items()}
    assert values == {"ok_time": 3, "ok_hash": 3, "edited_time": 2, "edited_hash": 2,
                      "old": 1, "magic": 1, "opt": 1, "in_code": 1, "recorded": 3,
                      "recorded_edited": 2}
    assert reused == 3


def _stdlib_sample(stdlib: Path, count: int, max_size: int) -> list[str]:
    """*count* stdlib modules of at most *max_size* bytes, spread over the whole library."""
    names = sorted(p.relative_to(stdlib).as_posix() for p in stdlib.rglob("*.py")
                   if not {"site-packages", "test", "tests", "idle_test", "__pycache__"}
                   & set(p.relative_to(stdlib).parts) and p.stat().st_size <= max_size)
    step = max(1, len(names) // count)
    return names[::step][:count]


_PY_COMPILE = """
import py_compile, sys
for i, path in enumerate(sys.argv[1:]):
    mode = py_compile.PycInvalidationMode.CHECKED_HASH if i % 3 == 0 else None
    try:
        py_compile.compile(path, doraise=True, invalidation_mode=mode)
    except py_compile.PyCompileError:
        pass
"""


def _taken_and_fresh(python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Property over 300 modules of *python*'s stdlib: their pycs written by py_compile
    (timestamp and hash based, another process with a random hash seed), loaded and brought
    to the canonical form, are byte for byte what compiling the sources gives."""
    probe = ("import sys, sysconfig; "
             "print(sys.implementation.cache_tag, sysconfig.get_path('stdlib'))")
    tag, path = run([python, "-c", probe]).stdout.split()
    stdlib, compiler = Path(path), Compiler(python, tag)
    site = tmp_path / "site-packages"
    entries = []
    for rel in _stdlib_sample(stdlib, 300, 24_000):  # the big ones cost time, not coverage
        dest = site / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(stdlib / rel, dest)
        entries.append(LayerEntry(f"site-packages/{rel}", str(dest)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED",
                                                              "PYTHONDONTWRITEBYTECODE")}
    run([python, "-c", _PY_COMPILE, *(e.source for e in entries)], env=env)
    plan = LayerPlan("dist", tuple(entries), "record")
    taken, reused = _compiled([plan], tmp_path / "taken", compiler)
    monkeypatch.setattr(bc, "REUSE_KINDS", frozenset())
    fresh, none = _compiled([plan], tmp_path / "fresh", compiler)
    assert none == 0 and reused == len(fresh) > 250
    assert sorted(taken) == sorted(fresh)
    assert [a for a in fresh if taken[a] != fresh[a]] == []


def test_stdlib_pycs_taken_give_the_bytes_of_a_fresh_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _taken_and_fresh(sys.executable, tmp_path, monkeypatch)


@pytest.mark.parametrize("python", cpython_versions())
def test_stdlib_pycs_taken_give_the_same_bytes_on_each_cpython(
    python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same property on every CPython 3.10-3.13 found here (the form holds per version)."""
    _taken_and_fresh(python, tmp_path, monkeypatch)


# What a fresh compile and a loaded pyc tend to share or intern differently: equal constants
# in several functions, 1 / 1.0 / True, 0.0 / -0.0, frozensets, non-ASCII names that are also
# strings, closures over arguments, big ints, long repeated strings.
_MODULE = '''"""A module whose constants a compiler and a pyc loader share differently."""
from __future__ import annotations

import math

DOC = "a long string, repeated: " * 3
TABLE = {"1": 1, "1.0": 1.0, "true": True, "zero": 0.0, "minus_zero": -0.0, "nan": math.nan}
BIG = 2 ** 200 - 1
café = "café"


def first(x: int = 1) -> tuple[object, ...]:
    """Docstring."""
    return (1, 1.0, True, 0.0, -0.0, -0.0j, "a long string, repeated: ", x in {1, 2, "three"})


def second(y: float = 1.0) -> tuple[object, ...]:
    return (True, 1, 1.0, -0.0, 0.0, (1, (2, "deep")), y in {"three", 2, 1}, BIG, café)


def outer(arg, *rest, **kw):
    def inner():
        return arg, rest, kw, "é", "ab" + "cd"
    return inner, lambda: (arg, "ab" "cd", b"bytes", b"bytes")


class Klass:
    attr: dict[str, int] = {}

    def method(self, value=frozenset({"x", "y", 3, 3.0, (1, 2)})):
        return f"{value!r:>10} {self.attr}", [i for i in range(3) if i]
'''


def _kit_blob(result: PackResult) -> dict[str, bytes]:
    ref = layer_ref(result, "canonkit")
    with tarfile.open(result.blobs[ref.digest]) as tar:
        return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def test_pip_venv_with_pycs_and_uv_venv_without_give_the_same_blob(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same wheel installed by pip (which byte-compiles) and by uv (which does not):
    pip's pycs are taken, and the dist blobs are identical, bytecode included."""
    wheel = write_wheel(tmp_path / "wheels", "canonkit", "1.0", {
        "canonkit/__init__.py": _MODULE.encode(),
        "canonkit/sub/__init__.py": b"",
        "canonkit/sub/more.py": _MODULE.replace("café", "naïve").encode(),
    })
    venvs = {}
    for name in ("pip", "uv"):
        venvs[name] = tmp_path / name
        run([uv_bin(), "venv", "-q", "-p", sys.executable, str(venvs[name])])
    pip_py = str(venvs["pip"] / "bin" / "python")
    run([uv_bin(), "pip", "install", "-q", "-p", pip_py, "pip"])
    index = ["--no-index", "--find-links", str(wheel.parent), "canonkit"]
    run([pip_py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *index])
    run([uv_bin(), "pip", "install", "-q", "-p", str(venvs["uv"] / "bin" / "python"), *index])
    assert len(list(venvs["pip"].rglob(f"canonkit/**/__pycache__/*.{TAG}.pyc"))) == 3
    assert not list(venvs["uv"].rglob("canonkit/**/*.pyc"))
    # uv notes when it installed a wheel from a local directory: installer's, not the wheel's
    assert list(venvs["uv"].rglob("canonkit-1.0.dist-info/uv_cache.json"))
    with caplog.at_level(logging.INFO, logger="envship.packing.bytecode"):
        by_pip = pack(venvs["pip"], cache_dir=tmp_path / "cache-pip", exclude=["pip"])
    assert "3 modules taken from their installer's pycs, 0 compiled" in caplog.text
    by_uv = pack(venvs["uv"], cache_dir=tmp_path / "cache-uv")
    pip_blob, uv_blob = _kit_blob(by_pip), _kit_blob(by_uv)
    assert layer_ref(by_pip, "canonkit").digest == layer_ref(by_uv, "canonkit").digest
    assert [n for n in uv_blob if n.endswith(".pyc")] == [
        f"site-packages/canonkit/__pycache__/__init__.{TAG}.pyc",
        f"site-packages/canonkit/sub/__pycache__/__init__.{TAG}.pyc",
        f"site-packages/canonkit/sub/__pycache__/more.{TAG}.pyc"]
    assert pip_blob == uv_blob

