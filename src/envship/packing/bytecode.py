"""Bytecode inside the blobs: compile a layer's ``site-packages/**.py`` with the target interpreter.

PEP 552 hash-based pycs (no timestamps), ``co_filename`` = the path relative to site-packages,
written by stdlib-only workers (:mod:`compile_worker`) run by the target interpreter in a
clean environment, one per usable CPU (:func:`worker_count`), fed batches from a queue, so
that the pack archives each layer as soon as its modules are compiled while the workers go on
with the next. A module of a dist, python or conda layer whose installer or package already
wrote its bytecode (pip does, so does conda's python for its stdlib) is not compiled again: the
worker takes that pyc when it is provably the source's (:mod:`package_pycs` for a conda
package's) and writes the same canonical form a compile gives. Byte-identical across runs,
directories, users, HOME and installers (checked for CPython 3.8-3.13: see the worker's notes).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import PackError
from .layers import LayerEntry, LayerPlan, module_root, pyc_arcname
from .package_pycs import package_hashes

__all__ = ["CHECKED", "REUSE_KINDS", "WORKERS_ENV", "CompilePool", "Compiler", "compile_layers",
           "compiler_for", "installed_pyc", "worker_count"]

log = logging.getLogger(__name__)

# Unchecked: nodes never read and hash the .py to validate the .pyc. Layers are immutable and
# content-addressed (their files read-only on nodes), so a check could only ever pass, and it
# makes every import open + read + hash its source (import pandas, pyarrow: 364 modules, 11 MB;
# equal times on local disk, measured: see CHANGELOG), which costs on network filesystems.
CHECKED = False
WORKERS_ENV = "ENVSHIP_PACK_WORKERS"  # compile worker processes (default: one per usable CPU)
# The reference env's cold pack (uv venv, no pycs) is ~8.5 s of compiling and ~4 s of archiving,
# which one thread drives: past ~4 workers the archiver sets the pace, past 8 it surely does.
_MAX_WORKERS = 8
_WORKER = Path(__file__).with_name("compile_worker.py")
# Bump when the worker's output for the same input can change, or which modules are compiled
# (part of every fingerprint). 2: test suites are not compiled. 3: every object marshal
# writes carries FLAG_REF. 4: code trees in canonical form (sharing, interning), so that a
# pyc the installer wrote gives the bytes of a fresh compile. 5: conda packages' pycs through
# the same check and canonical form.
WORKER_VERSION = "5"
# Take the pycs installers wrote beside the modules of these layer kinds (their installer ran
# the target interpreter; a project checkout's pycs may come from any interpreter of the tag).
REUSE_KINDS = frozenset({"dist", "python", "conda"})
# A batch: up to this many source bytes (a big layer is shared by the workers) or files.
_BATCH_BYTES = 1 << 20
_BATCH_FILES = 256


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


def worker_count() -> int:
    """How many compile workers a pack starts: ``$ENVSHIP_PACK_WORKERS``, else one per CPU
    this process may run on (its affinity: a cpuset or ``taskset`` counts), at most
    :data:`_MAX_WORKERS`. Bytecode is CPU-bound: a cold pack of a venv without pycs spends
    ~70 % of its CPU in these workers. The blobs do not depend on how many there are."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise PackError(f"{WORKERS_ENV}={raw!r}: give a number of processes (1 or more)")
        return int(raw)
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, _MAX_WORKERS))


def installed_pyc(source: str, cache_tag: str) -> str:
    """Where an installer writes the plain (not ``opt-N``) pyc of *source*
    (``a/b.py`` -> ``a/__pycache__/b.<cache_tag>.pyc``)."""
    head, tail = os.path.split(source)
    return os.path.join(head, "__pycache__", f"{tail.rpartition('.')[0] or tail}.{cache_tag}.pyc")


def _recorded(entry: LayerEntry) -> str:
    """The worker's ``package`` field for a source whose installer recorded its sha256 (a
    RECORD row's ``sha256=<urlsafe base64>`` or a conda record's hex digest): ``<hex>:``, else
    "". A timestamp pyc only proves mtime and size; the recorded hash proves the content."""
    known = entry.known_hash or ""
    if known.startswith("sha256="):
        b64 = known[len("sha256="):]
        try:
            known = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
        except ValueError:  # binascii.Error
            return ""
    return f"{known}:" if len(known) == 64 else ""


def _installed_since(python: str) -> int | None:
    """When the target interpreter was last installed or changed (ctime of its real file, ns):
    pycs written before may come from another build with the same magic number. None if it
    cannot be told (then nothing is reused)."""
    try:
        return os.stat(os.path.realpath(python)).st_ctime_ns
    except OSError:
        return None


def _env() -> dict[str, str]:
    # Nothing of the user's: no HOME, no PYTHON* variables but a fixed hash seed.
    env = {"PYTHONHASHSEED": "0", "LC_ALL": "C"}
    for key in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "SYSTEMROOT", "PATH"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _dfile(arcname: str) -> str:
    """What ``co_filename`` says: the path below the ``sys.path`` entry holding the module."""
    root = module_root(arcname)
    return arcname[len(root):] if root else arcname


def _pyc_key(compiler: Compiler, dfile: str, path: str) -> tuple[str, int]:
    """(key, size): what a pyc's bytes depend on — the source, its dfile, the compiler. The
    worker computes the same key from the bytes it compiles (``_compile_one``)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise PackError(f"cannot read {path}: {exc.strerror or exc}; fix it or exclude it."
                        ) from exc
    h = hashlib.sha256(f"{compiler.fingerprint}\0{dfile}\0".encode("utf-8", "surrogateescape"))
    h.update(data)
    return h.hexdigest(), len(data)


def _has_entries(folder: Path | None) -> bool:
    try:
        return folder is not None and next(os.scandir(folder), None) is not None
    except OSError:
        return False


@dataclass
class _Job:
    entry: LayerEntry  # the .py
    dfile: str
    out: str  # where the worker writes the pyc
    size: int
    cached: Path | None  # where the pyc is kept in the bytecode cache
    installed: str  # the pyc the installer wrote, for the worker to check and take, or ""
    # "<source sha256>:<pyc sha256>" (see package_pycs), or "<source sha256>:" where the
    # installer recorded the source's hash: the pyc is only taken for that very source
    package: str = ""


@dataclass
class _Layer:
    """One plan's compile: pycs found in the cache, batches still running."""

    index: int
    done: list[LayerEntry] = field(default_factory=list)
    running: int = 0


class CompilePool:
    """The target interpreter's compile workers: :meth:`compile` queues layers, yields each
    once all its modules are compiled. Use as a context manager (the workers are stopped,
    killed on an error or interrupt)."""

    def __init__(self, compiler: Compiler, work_dir: Path, pyc_cache: Path | None = None,
                 workers: int | None = None) -> None:
        self.compiler = compiler
        self.work_dir = work_dir
        self.pyc_cache = pyc_cache
        self._workers = workers or worker_count()
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="envship-compile")
        self._local = threading.local()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._errs: list[IO[bytes]] = []
        self._lock = threading.Lock()
        self._count = 0
        self._logged = False
        self._since = _installed_since(compiler.python)
        self.reused = 0  # modules whose installer's pyc was taken (since the pool started)
        self.compiled = 0  # modules compiled

    def __enter__(self) -> CompilePool:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(kill=exc_type is not None)

    def close(self, kill: bool = False) -> None:
        """Stop the workers (at once with *kill*: threads waiting on them see EOF)."""
        with self._lock:
            procs, self._procs = self._procs, []
        for proc in procs:
            if kill:
                proc.kill()
            elif proc.stdin is not None:
                _close(proc.stdin)
        self._executor.shutdown(wait=True, cancel_futures=True)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    _close(stream)
        for err in self._errs:
            err.close()

    # -- planning -----------------------------------------------------------------
    def _jobs(self, plan: LayerPlan, layer: _Layer, lookup: bool) -> list[_Job]:
        """*plan*'s modules to compile; with *lookup*, those found in the bytecode cache go
        straight into *layer*."""
        jobs = []
        tag = self.compiler.cache_tag
        reuse = plan.kind in REUSE_KINDS and self._since is not None
        vouched = package_hashes(plan, self.compiler.python, tag) if reuse else {}
        for entry in plan.py_sources:
            dfile = _dfile(entry.arcname)
            cached = None
            if lookup and self.pyc_cache is not None:
                key, size = _pyc_key(self.compiler, dfile, entry.source)
                cached = self.pyc_cache / key[:2] / f"{key}.pyc"
                if cached.is_file():
                    layer.done.append(LayerEntry(pyc_arcname(entry.arcname, tag), str(cached)))
                    continue
            else:
                try:
                    size = os.stat(entry.source).st_size
                except OSError:
                    size = 0
            self._count += 1
            jobs.append(_Job(entry, dfile, str(self.work_dir / f"{self._count}.pyc"), size,
                             cached, installed_pyc(entry.source, tag) if reuse else "",
                             vouched.get(entry.arcname)
                             or (_recorded(entry) if reuse else "")))
        return jobs

    def compile(self, plans: Sequence[LayerPlan]) -> Iterator[tuple[int, tuple[LayerEntry, ...]]]:
        """Queue every plan's modules now (biggest layer first); the iterator yields
        ``(plan index, pyc entries)`` as each plan is complete, in completion order."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        layers = [_Layer(i) for i in range(len(plans))]
        # An empty bytecode cache (a first pack) can hit nothing: the sources are not read and
        # hashed here, before the workers start; each worker gives the key of what it compiled.
        lookup = _has_entries(self.pyc_cache)
        work: list[tuple[int, list[_Job]]] = []
        for i, plan in enumerate(plans):
            jobs = self._jobs(plan, layers[i], lookup)
            if jobs:
                work.append((i, sorted(jobs, key=lambda j: -j.size)))
        work.sort(key=lambda w: -sum(j.size for j in w[1]))
        total = sum(len(jobs) for _, jobs in work)
        if total:
            log.info("compiling %d modules with %s", total, self.compiler.python)
        futures: dict[Future[list[tuple[_Job, str]]], _Layer] = {}
        for i, jobs in work:
            for batch in _batches(jobs):
                futures[self._executor.submit(self._run, batch)] = layers[i]
                layers[i].running += 1
        return self._finished(plans, layers, futures)

    def _finished(
        self, plans: Sequence[LayerPlan], layers: list[_Layer],
        futures: dict[Future[list[tuple[_Job, str]]], _Layer],
    ) -> Iterator[tuple[int, tuple[LayerEntry, ...]]]:
        for layer in layers:
            if layer.running == 0:
                yield layer.index, tuple(sorted(layer.done, key=lambda e: e.arcname))
        for fut in as_completed(futures):
            layer = futures[fut]
            for job, status in fut.result():
                if status[:1] not in ("R", "C"):
                    log.debug("not compiling %s: %s", job.entry.source, status[1:] or "no answer")
                    continue
                if status[:1] == "R":
                    self.reused += 1
                else:
                    self.compiled += 1
                layer.done.append(LayerEntry(pyc_arcname(job.entry.arcname,
                                                         self.compiler.cache_tag),
                                             self._keep(job, status[1:])))
            layer.running -= 1
            if layer.running == 0:
                yield layer.index, tuple(sorted(layer.done, key=lambda e: e.arcname))
        if futures:
            log.info("bytecode: %d modules taken from their installer's pycs, %d compiled",
                     self.reused, self.compiled)

    def _keep(self, job: _Job, key: str) -> str:
        """Move the pyc into the bytecode cache, under the key the worker gave if none was
        computed before (*key*: hex sha256, see :func:`_pyc_key`)."""
        if job.cached is None and self.pyc_cache is not None and len(key) == 64:
            job.cached = self.pyc_cache / key[:2] / f"{key}.pyc"
        if job.cached is None:
            return job.out
        try:
            job.cached.parent.mkdir(parents=True, exist_ok=True)
            os.replace(job.out, job.cached)
            return str(job.cached)
        except OSError as exc:  # a cache that cannot be written only costs speed
            log.debug("cannot keep %s in the bytecode cache: %s", job.out, exc)
            return job.out

    # -- the workers ------------------------------------------------------------
    def _proc(self) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] | None = getattr(self._local, "proc", None)
        if proc is not None:
            return proc
        with self._lock:
            err = open(self.work_dir / f"worker-{len(self._errs)}.err", "w+b")  # noqa: SIM115
            self._errs.append(err)
            try:
                proc = subprocess.Popen(
                    [self.compiler.python, "-S", "-s", "-B", str(_WORKER)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=_env(),
                    cwd=self.work_dir,
                )
            except OSError as exc:
                raise PackError(f"cannot run {self.compiler.python} to compile bytecode: "
                                f"{exc.strerror or exc}") from exc
            self._procs.append(proc)
        self._local.proc = proc
        self._local.err = err
        return proc

    def _run(self, batch: list[_Job]) -> list[tuple[_Job, str]]:
        """Compile *batch* in this thread's worker: (job, status) per job: "C<key>" compiled,
        "R<key>" the installer's pyc taken, "E<error>" not compiled."""
        proc = self._proc()
        assert proc.stdin is not None and proc.stdout is not None
        mode = b"checked" if self.compiler.checked else b"unchecked"
        fields = [mode, b"" if self._since is None else str(self._since).encode(),
                  self.compiler.fingerprint.encode()]
        for job in batch:
            fields += [os.fsencode(job.entry.source), os.fsencode(job.dfile),
                       os.fsencode(job.out), os.fsencode(job.installed), job.package.encode()]
        data = b"\0".join(fields)
        try:
            proc.stdin.write(struct.pack("<Q", len(data)) + data)
            proc.stdin.flush()
            head = proc.stdout.read(8)
            answer = proc.stdout.read(struct.unpack("<Q", head)[0]) if len(head) == 8 else None
        except (OSError, ValueError):
            answer = None
        if answer is None:
            raise PackError(f"compiling bytecode with {self.compiler.python} failed "
                            f"({self._died(proc)})")
        status = dict(line.split("\t", 1) for line in
                      answer.decode("utf-8", "replace").splitlines() if "\t" in line)
        return [(job, status.get(str(k), "")) for k, job in enumerate(batch)]

    def _died(self, proc: subprocess.Popen[bytes]) -> str:
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        err: IO[bytes] = self._local.err
        err.seek(0)
        tail = (err.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return f"exit {code}: {tail}"


def _close(stream: IO[bytes]) -> None:
    # a dead worker: what is left in the pipe's buffer cannot be flushed
    with contextlib.suppress(OSError):
        stream.close()


def _batches(jobs: list[_Job]) -> Iterator[list[_Job]]:
    batch: list[_Job] = []
    size = 0
    for job in jobs:
        batch.append(job)
        size += job.size
        if size >= _BATCH_BYTES or len(batch) >= _BATCH_FILES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def compile_layers(
    compiler: Compiler,
    plans: Sequence[LayerPlan],
    work_dir: Path,
    pyc_cache: Path | None = None,
) -> list[tuple[LayerEntry, ...]]:
    """For each plan, the pyc entries of its modules (written under *work_dir*, which the
    caller removes once the blobs are written). Files that do not compile are left out
    (debug log). With *pyc_cache*, a source compiled before (same bytes, same path in
    site-packages: e.g. most of pandas across an upgrade) is not compiled again."""
    with CompilePool(compiler, work_dir, pyc_cache) as pool:
        done = dict(pool.compile(plans))
    return [done[i] for i in range(len(plans))]
