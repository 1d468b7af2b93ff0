"""``pex`` delivery: the executors' Python is a single-file PEX shipped in ``spark.files``."""

from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any

from ...errors import EngineError
from ..hadoop import hadoop_url
from .base import ENV_CONF, MODE_CONF, Request
from .local import is_local_master
from .reports import ExecutorReport, checked_reports

__all__ = [
    "PEX_MODE",
    "PEX_NAME_CONF",
    "is_pex",
    "pex_name",
    "confs",
    "wants_pex",
    "require_executors_run_pex",
]

log = logging.getLogger(__name__)

PEX_MODE = "pex"
PEX_NAME_CONF = "spark.envship.pex"  # the PEX file name the session was configured with


def wants_pex(env: object, mode: str) -> bool:
    """Does Spark *mode* with *env* mean "run a PEX": ``mode="pex"``, or a ``.pex`` path/URL
    given in the default (archives) mode."""
    if mode == PEX_MODE and _names_an_env(env):
        shown = getattr(env, "uri", env)
        raise EngineError(f"--mode pex runs a PEX file, and {shown} is an env: drop --mode pex "
                          "to run the env, or give a .pex (`envship pack -r requirements.txt "
                          "--format pex`)")
    return mode == PEX_MODE or (mode == "archives" and is_pex(env))


def _names_an_env(env: object) -> bool:
    """An Env, a manifest or tag URI (``….json``), or a packed env directory: not a PEX."""
    if isinstance(env, os.PathLike):
        env = os.fspath(env)
    if not isinstance(env, str):
        return hasattr(env, "manifest")
    return urllib.parse.urlsplit(env).path.endswith(".json") or os.path.isdir(env)


def is_pex(env: object) -> bool:
    """True when *env* is a local path or URL (str or path-like) ending in ``.pex``."""
    if isinstance(env, os.PathLike):
        env = os.fspath(env)
    return isinstance(env, str) and urllib.parse.urlsplit(env).path.endswith(".pex")


def pex_name(pex: str | os.PathLike[str]) -> str:
    """The PEX's file name, as executors see it in their working directory."""
    if not isinstance(pex, (str, os.PathLike)):
        raise EngineError(f"{pex!r} is not a PEX: pass the path or URL of a .pex file")
    return urllib.parse.urlsplit(os.fspath(pex)).path.rstrip("/").rsplit("/", 1)[-1]


def _locate(pex: str) -> tuple[str, Path | None]:
    """(the URL Spark fetches, the local file or None when the PEX is remote)."""
    parts = urllib.parse.urlsplit(pex)
    if parts.scheme in ("", "file") or len(parts.scheme) == 1:
        from urllib.request import url2pathname  # imports http.client, ssl: only here

        raw = url2pathname(parts.path) if parts.scheme == "file" else pex
        local = Path(raw).expanduser().absolute()
        if not local.is_file():
            raise EngineError(
                f"PEX {pex} not found: build one with "
                "`envship pack -r requirements.txt --format pex`"
            )
        return str(local), local
    return hadoop_url(pex), None


def confs(pex: object, req: Request) -> dict[str, str]:
    """The Spark confs that run the executors' Python from the PEX *pex* (path or URL).

    Cluster masters: the PEX goes in ``spark.files`` and ``spark.pyspark.python`` is
    ``./<name>.pex`` (with ``PEX_ROOT`` in the executor's working directory). ``local[...]``:
    the workers run on this machine, outside any Spark working directory, so the absolute path
    of the local file is used. ``PEX_INHERIT_PATH=fallback``: pex scrubs ``PYTHONPATH``, through
    which Spark hands the workers pyspark; with it, the PEX's own packages still come first.
    """
    if isinstance(pex, os.PathLike):
        pex = os.fspath(pex)
    if not isinstance(pex, str) or not pex:
        raise EngineError(
            f"{pex!r} is not a PEX: pass the path or URL of a .pex file written by "
            "`envship pack --format pex`"
        )
    url, local = _locate(pex)
    out = {
        ENV_CONF: url,
        MODE_CONF: PEX_MODE,
        PEX_NAME_CONF: pex_name(url),
        "spark.executorEnv.PEX_INHERIT_PATH": "fallback",
    }
    if is_local_master(req.master):
        if local is None:
            raise EngineError(
                f"a local[...] master runs the PEX from this machine: download {pex} and pass "
                "its local path"
            )
        out["spark.pyspark.python"] = str(local)
        return out
    from ...packing.pex import pex_spark_conf

    out.update(pex_spark_conf(url))
    return out


def require_executors_run_pex(spark: Any, name: str) -> list[ExecutorReport]:
    """:func:`~.check.executor_reports`, raising :class:`EngineError` unless every executor
    runs PEX *name* (pex sets ``$PEX`` to the PEX file it runs)."""
    reports = checked_reports(
        spark, "PEX", f"the executor logs tell why {name} did not start (is a matching "
        "python3.X on the nodes' PATH?)")
    wrong = [r for r in reports if not r.pex or os.path.basename(r.pex) != name]
    if wrong:
        r = wrong[0]
        seen = f"PEX {r.pex}" if r.pex else "no PEX"
        raise EngineError(
            f"executors do not run {name}: on {r.host}, {r.executable} runs {seen}. Is "
            "spark.pyspark.python / PYSPARK_PYTHON overridden, or was the session created "
            "before envship configured it?"
        )
    log.info("%d executor python processes run %s", len(reports), name)
    return reports
