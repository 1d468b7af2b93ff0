"""Check that driver and executors agree on the env: local code unchanged, executors inside it."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import EngineError, EnvshipError
from ...packing.manifest import SCHEMA

if TYPE_CHECKING:
    from ...env import Env

__all__ = [
    "CodeDrift",
    "ExecutorReport",
    "code_drift",
    "require_code_match",
    "checked_reports",
    "executor_reports",
    "require_executors_in_env",
]

log = logging.getLogger(__name__)

_SITE = "site-packages/"
_SKIP_SUFFIXES = (".dist-info", ".egg-info", ".pth")


@dataclass(frozen=True)
class CodeDrift:
    """Local sources that differ from the env's code layer (paths relative to site-packages)."""

    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # in the layer, gone locally
    compared: int = 0  # files compared

    @property
    def ok(self) -> bool:
        return not self.changed and not self.missing


@dataclass(frozen=True)
class ExecutorReport:
    """What one executor Python process says about itself."""

    env_id: str | None  # the envship env it runs in, if any
    prefix: str
    executable: str
    host: str
    pex: str | None = None  # the PEX file it runs, if any (pex sets $PEX)


def code_drift(env: Env, search_path: Sequence[str] = ()) -> CodeDrift:
    """Compare the env's code layer with the code this process would import.

    Each top-level package or module in the code layer is located locally (first in
    *search_path*, e.g. the job script's directory, then through this interpreter's finders,
    which resolve editable installs to their checkout); files are compared by sha256.
    Names that cannot be found locally are skipped (the driver may run elsewhere).
    """
    # Schema 2: one code layer per project (the one naming no distribution holds stray
    # files, not code being worked on); schema 1: the one code layer.
    layers = [lay for lay in env.manifest.layers_of("code")
              if lay.dists or env.manifest.schema_id != SCHEMA]
    if not layers:
        return CodeDrift()
    changed: list[str] = []
    missing: list[str] = []
    compared = 0
    with tempfile.TemporaryDirectory(prefix="envship-check-") as tmp:
        for layer in layers:
            blob = Path(tmp) / f"{layer.hex}.tar.gz"
            try:
                env.store().fetch_blob(layer.digest, blob)
            except EnvshipError as exc:
                raise EngineError(
                    f"cannot read the code layer of env {env.env_id[:12]} to compare it with the "
                    f"local code: {exc}; pass check=False (--no-check) to skip the check"
                ) from exc
            for rel, digest in _layer_files(blob):
                local = _locate(rel, search_path)
                if local is None:
                    continue
                compared += 1
                if not local.is_file():
                    missing.append(rel)
                elif _sha256(local) != digest:
                    changed.append(rel)
    return CodeDrift(tuple(changed), tuple(missing), compared)


def require_code_match(env: Env, search_path: Sequence[str] = ()) -> CodeDrift:
    """:func:`code_drift`, raising :class:`EngineError` when the local code was edited."""
    drift = code_drift(env, search_path)
    if drift.ok:
        log.info("local code matches env %s (%d files)", env.env_id[:12], drift.compared)
        return drift
    shown = [f"{p} (changed)" for p in drift.changed] + [f"{p} (deleted)" for p in drift.missing]
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    raise EngineError(
        f"local code differs from env {env.env_id[:12]}: {', '.join(shown[:5])}{more}. "
        "Ship again (`envship ship` / envship.ship()) and use the new env, or pass "
        "check=False (--no-check) to run the shipped code anyway."
    )


def executor_reports(spark: Any, tasks: int | None = None) -> list[ExecutorReport]:
    """Run a tiny job: one report per task from the executors' Python processes."""
    sc = spark.sparkContext
    n = tasks or max(2, min(int(sc.defaultParallelism), 16))

    # Defined here, not at module level, so Spark pickles it by value: executors need not
    # have envship installed (a PEX need not hold it either).
    def report(_: Iterator[int]) -> Iterator[tuple[str | None, str, str, str, str | None]]:
        import os as _os
        import socket
        import sys

        env_id = None
        try:
            with open(_os.path.join(sys.prefix, "envship-env-id")) as f:
                env_id = f.read().strip() or None
        except OSError:
            env_id = _os.environ.get("ENVSHIP_ENV_ID")
        yield env_id, sys.prefix, sys.executable, socket.gethostname(), _os.environ.get("PEX")

    rows = sc.parallelize(range(n), n).mapPartitions(report).collect()
    return [ExecutorReport(*row) for row in rows]


def checked_reports(spark: Any, what: str, hint: str) -> list[ExecutorReport]:
    """:func:`executor_reports`; a failed check job becomes one EngineError line naming
    *what* was checked, with *hint* on where to look."""
    try:
        return executor_reports(spark)
    except Exception as exc:  # py4j/pyspark errors: the executors' python did not even start
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"the {what} check job failed on the executors ({first}); {hint}"
                          ) from exc


def require_executors_in_env(spark: Any, env_id: str) -> list[ExecutorReport]:
    """:func:`executor_reports`, raising :class:`EngineError` unless all run env *env_id*."""
    reports = checked_reports(
        spark, "env", "the executor logs tell why the env's python did not start")
    wrong = [r for r in reports if r.env_id != env_id]
    if wrong:
        r = wrong[0]
        seen = f"env {r.env_id[:12]}" if r.env_id else "no envship env"
        raise EngineError(
            f"executors do not run env {env_id[:12]}: on {r.host}, {r.executable} "
            f"(prefix {r.prefix}) runs {seen}. Is spark.pyspark.python / PYSPARK_PYTHON "
            "overridden, or was the session created before envship configured it?"
        )
    log.info("%d executor python processes run env %s", len(reports), env_id[:12])
    return reports


def _layer_files(blob: Path) -> Iterator[tuple[str, str]]:
    """(path relative to site-packages, sha256) of the code layer's own source files."""
    with tarfile.open(blob, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith(_SITE):
                continue
            rel = member.name[len(_SITE) :]
            top = rel.split("/", 1)[0]
            if top.endswith(_SKIP_SUFFIXES) or top.startswith("__editable__"):
                continue
            if rel.endswith(".pyc") or "__pycache__/" in rel:
                continue  # schema 2 code layers carry bytecode; the local checkout's differs
            f = tar.extractfile(member)
            if f is None:
                continue
            yield rel, hashlib.sha256(f.read()).hexdigest()


def _locate(rel: str, search_path: Sequence[str]) -> Path | None:
    """The local file *rel* (``pkg/mod.py`` or ``mod.py``) would be imported from, if known."""
    top, _, rest = rel.partition("/")
    name = top[:-3] if not rest and top.endswith(".py") else top
    if not rest and not top.endswith(".py"):
        return None  # a stray data file at the top of site-packages
    spec = _find_spec(name, search_path)
    if spec is None:
        return None
    if rest:
        for base in spec.submodule_search_locations or ():
            candidate = Path(base) / rest
            if candidate.exists():
                return candidate
        locations = list(spec.submodule_search_locations or ())
        if not locations or _is_namespace(spec):
            return None  # a namespace portion is no evidence the file was deleted
        return Path(locations[0]) / rest
    return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None


def _is_namespace(spec: importlib.machinery.ModuleSpec) -> bool:
    return spec.origin in (None, "namespace")


def _find_spec(name: str, search_path: Sequence[str]) -> importlib.machinery.ModuleSpec | None:
    if search_path:
        # Like a script's own directory at the head of sys.path; a bare directory there (a
        # namespace portion, e.g. a project checkout named like its package) does not count.
        spec = importlib.machinery.PathFinder.find_spec(name, [os.fspath(p) for p in search_path])
        if spec is not None and not _is_namespace(spec):
            return spec
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
