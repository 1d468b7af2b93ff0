"""Bytecode inside the blobs: compile a layer's ``site-packages/**.py`` with the target interpreter.

PEP 552 hash-based pycs (no timestamps), ``co_filename`` = the path relative to site-packages,
compiled by a stdlib-only worker (:mod:`compile_worker`) run by the target interpreter in a
clean environment, two processes at a time. Byte-identical across runs, directories, users
and HOME (checked for CPython 3.10-3.13: see the worker's notes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackError
from .layers import LayerEntry, LayerPlan

__all__ = ["CHECKED", "WORKERS", "Compiler", "compiler_for", "pyc_arcname", "compile_layers"]

log = logging.getLogger(__name__)

# Unchecked: nodes never read and hash the .py to validate the .pyc. Layers are immutable and
# content-addressed (their files read-only on nodes), so a check could only ever pass, and it
# makes every import open + read + hash its source (import pandas, pyarrow: 364 modules, 11 MB;
# equal times on local disk, measured: see CHANGELOG), which costs on network filesystems.
CHECKED = False
WORKERS = 2
_WORKER = Path(__file__).with_name("compile_worker.py")
# Bump when the worker's output for the same input can change (part of every fingerprint).
WORKER_VERSION = "1"
_TIMEOUT = 1800


@dataclass(frozen=True)
class Compiler:
    """The target interpreter that compiles, and the pyc flavour it writes."""

    python: str
    cache_tag: str
    checked: bool = CHECKED

    @property
    def fingerprint(self) -> str:
        mode = "checked" if self.checked else "unchecked"
        return f"bytecode={mode}:{self.cache_tag}:{WORKER_VERSION}"


def compiler_for(executable: str, cache_tag: str | None) -> Compiler | None:
    """A compiler for an env whose interpreter is *executable* ("" for a lock build).

    A lock build has no interpreter of its own; bytecode depends only on the CPython version
    (magic number, marshal format), so the running interpreter compiles when its cache tag is
    the target's. Otherwise None: the node compiles (``"bytecode": "node"``).
    """
    if not cache_tag:
        return None
    if executable and os.access(executable, os.X_OK):
        return Compiler(executable, cache_tag)
    if not executable and sys.implementation.cache_tag == cache_tag:
        return Compiler(sys.executable, cache_tag)
    return None


def pyc_arcname(py_arcname: str, cache_tag: str) -> str:
    """``site-packages/a/b.py`` -> ``site-packages/a/__pycache__/b.<cache_tag>.pyc``
    (importlib.util.cache_from_source's rule)."""
    head, _, tail = py_arcname.rpartition("/")
    base = tail.rpartition(".")[0] or tail
    return f"{head}/__pycache__/{base}.{cache_tag}.pyc"


def _env() -> dict[str, str]:
    # Nothing of the user's: no HOME, no PYTHON* variables but a fixed hash seed.
    env = {"PYTHONHASHSEED": "0", "LC_ALL": "C"}
    for key in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "SYSTEMROOT", "PATH"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _pyc_key(compiler: Compiler, dfile: str, path: str) -> tuple[str, int]:
    """(key, size): what a pyc's bytes depend on — the source, its dfile, the compiler."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise PackError(f"cannot read {path}: {exc.strerror or exc}; fix it or exclude it."
                        ) from exc
    h = hashlib.sha256(f"{compiler.fingerprint}\0{dfile}\0".encode("utf-8", "surrogateescape"))
    h.update(data)
    return h.hexdigest(), len(data)


def compile_layers(
    compiler: Compiler,
    plans: Sequence[LayerPlan],
    work_dir: Path,
    pyc_cache: Path | None = None,
) -> list[tuple[LayerEntry, ...]]:
    """For each plan, the pyc entries of its site-packages ``.py`` files (written under
    *work_dir*, which the caller removes once the blobs are written). Files that do not
    compile are left out (debug log). With *pyc_cache*, a source compiled before (same
    bytes, same path in site-packages: e.g. most of pandas across an upgrade) is not
    compiled again."""
    # (plan index, source, out, size, cache file)
    jobs: list[tuple[int, LayerEntry, str, int, Path | None]] = []
    result: list[list[LayerEntry]] = [[] for _ in plans]
    for p, plan in enumerate(plans):
        for entry in plan.py_sources:
            arc = pyc_arcname(entry.arcname, compiler.cache_tag)
            cached = None
            if pyc_cache is not None:
                key, size = _pyc_key(compiler, entry.arcname[len("site-packages/"):],
                                     entry.source)
                cached = pyc_cache / key[:2] / f"{key}.pyc"
                if cached.is_file():
                    result[p].append(LayerEntry(arc, str(cached)))
                    continue
            else:
                try:
                    size = os.stat(entry.source).st_size
                except OSError:
                    size = 0
            jobs.append((p, entry, str(work_dir / f"{len(jobs)}.pyc"), size, cached))
    if not jobs:
        return [tuple(r) for r in result]
    log.info("compiling %d modules with %s", len(jobs), compiler.python)
    work_dir.mkdir(parents=True, exist_ok=True)
    # Balance the workers by source bytes (biggest first to the least loaded).
    shares: list[list[int]] = [[] for _ in range(min(WORKERS, len(jobs)))]
    load = [0] * len(shares)
    for j in sorted(range(len(jobs)), key=lambda j: -jobs[j][3]):
        w = load.index(min(load))
        shares[w].append(j)
        load[w] += jobs[j][3] + 2048
    procs = []
    mode = b"checked" if compiler.checked else b"unchecked"
    for share in shares:
        fields = [mode]
        for j in share:
            _, entry, pyc, _, _ = jobs[j]
            dfile = entry.arcname[len("site-packages/"):]
            fields += [os.fsencode(entry.source), os.fsencode(dfile), os.fsencode(pyc)]
        try:
            proc = subprocess.Popen(
                [compiler.python, "-S", "-s", "-B", str(_WORKER)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=work_dir,
            )
        except OSError as exc:
            raise PackError(f"cannot run {compiler.python} to compile bytecode: "
                            f"{exc.strerror or exc}") from exc
        procs.append((proc, share, b"\0".join(fields)))
    failed: set[int] = set()
    outputs: list[tuple[bytes, bytes]] = [(b"", b"")] * len(procs)

    def talk(k: int) -> None:
        proc, _, data = procs[k]
        try:
            outputs[k] = proc.communicate(data, timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            outputs[k] = proc.communicate()

    threads = [threading.Thread(target=talk, args=(k,)) for k in range(len(procs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (proc, share, _), (stdout, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            tail = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise PackError(f"compiling bytecode with {compiler.python} failed "
                            f"(exit {proc.returncode}: {tail})")
        for line in stdout.decode(errors="replace").splitlines():
            idx, _, msg = line.partition("\t")
            j = share[int(idx)]
            failed.add(j)
            log.debug("not compiling %s: %s", jobs[j][1].source, msg)
    for j, (p, entry, pyc, _, cached) in enumerate(jobs):
        if j in failed:
            continue
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                os.replace(pyc, cached)
                pyc = str(cached)
            except OSError as exc:  # a cache that cannot be written only costs speed
                log.debug("cannot keep %s in the bytecode cache: %s", pyc, exc)
        result[p].append(LayerEntry(pyc_arcname(entry.arcname, compiler.cache_tag), pyc))
    return [tuple(r) for r in result]
