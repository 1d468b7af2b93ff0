"""Executor reports: a tiny job asks every executor Python which env (or PEX) it runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import EngineError

__all__ = [
    "ExecutorReport",
    "checked_reports",
    "executor_reports",
    "require_executors_in_env",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutorReport:
    """What one executor Python process says about itself."""

    env_id: str | None  # the envship env it runs in, if any
    prefix: str
    executable: str
    host: str
    pex: str | None = None  # the PEX file it runs, if any (pex sets $PEX)


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
