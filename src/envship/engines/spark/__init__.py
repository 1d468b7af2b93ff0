"""Spark adapter: run PySpark executors inside a shipped env.

One module per delivery mode (``archives``, ``node_cache``, ``pex``, ``local``), chosen by
:func:`conf`; ``configure()`` applies the confs to a ``SparkSession.builder``, ``session()``
starts a session and checks that the executors run the env the driver ships. pyspark is
imported only when a session is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ...drift import CodeDrift, code_drift, require_code_match
from ...env import Env, EnvRef
from ...errors import EngineError
from ...node.formats import is_hex64
from .base import DEFAULT_PRESIGN_EXPIRES, ENV_ID_CONF, REDACTION_CONF, redaction_regex
from .conf import LIST_KEYS, MODES, conf, merge_list
from .pex import PEX_NAME_CONF, pex_name, require_executors_run_pex, wants_pex
from .reports import ExecutorReport, executor_reports, require_executors_in_env
from .submit import OWN_OPTIONS, SubmitCommand, local_modules, plan_submit, run_command

__all__ = [
    "MODES",
    "CodeDrift",
    "ExecutorReport",
    "conf",
    "configure",
    "session",
    "check",
    "code_drift",
    "executor_reports",
    "local_modules",
    "OWN_OPTIONS",
    "plan_submit",
    "SubmitCommand",
    "run_command",
]

log = logging.getLogger(__name__)


def configure(
    builder: Any,
    env: EnvRef,
    mode: str = "archives",
    *,
    master: str | None = None,
    cache_dir: str | None = None,
    presign: bool | None = None,
    expires: int = DEFAULT_PRESIGN_EXPIRES,
    storage_options: Mapping[str, Any] | None = None,
) -> Any:
    """Apply :func:`conf` to a ``SparkSession.builder`` and return it.

    List confs already on the builder (``spark.archives``, ``spark.files``…) are extended, not
    replaced. PySpark takes the executors' Python from ``$PYSPARK_PYTHON`` when the context
    starts (outside spark-submit it ignores ``spark.pyspark.python``), so this also sets it in
    this process. An S3 env is presigned when this Spark has no S3A connector and the
    builder's ``spark.jars*`` name none, as ``envship spark-submit`` does.
    """
    options: Mapping[str, Any] = getattr(builder, "_options", {}) or {}
    master = master or options.get("spark.master")
    if master:
        builder = builder.master(master)
    requested = [str(v) for k, v in options.items() if str(k).startswith("spark.jars")]
    confs = conf(env, mode, master=master, cache_dir=cache_dir, presign=presign, expires=expires,
                 storage_options=storage_options, requested=requested)
    defaults = _spark_defaults() if any(
        k in LIST_KEYS and options.get(k) is None for k in confs) else {}
    for key, value in confs.items():
        if key in LIST_KEYS:  # the builder's (else spark-defaults.conf's), then envship's
            value = merge_list(options.get(key, defaults.get(key)), value)
        elif key == REDACTION_CONF:
            value = redaction_regex(options.get(key))  # the user's own patterns stay
        builder = builder.config(key, value)
    os.environ["PYSPARK_PYTHON"] = confs["spark.pyspark.python"]
    return builder


def _spark_defaults() -> dict[str, str]:
    """The spark-defaults.conf the session's spark-submit reads ({} if none): a conf set on
    the builder hides the same key there, so envship's list confs take its entries in."""
    from . import properties
    from .installation import defaults_file
    from .local_cluster import find_spark_home

    try:
        home = find_spark_home()
    except EngineError:
        return {}
    found = defaults_file(home)
    return properties.read(found) if found is not None else {}


def session(
    env: EnvRef,
    master: str | None = None,
    *,
    mode: str = "archives",
    check: bool = True,
    app_name: str = "envship",
    cache_dir: str | None = None,
    presign: bool | None = None,
    expires: int = DEFAULT_PRESIGN_EXPIRES,
    py_files: Sequence[str] = (),
    search_path: Sequence[str] = (),
    storage_options: Mapping[str, Any] | None = None,
    **spark_conf: str,
) -> Any:
    """A ``SparkSession`` whose executors run inside *env*.

    With *check* (default), first the local code is compared with the env's code layer (edited
    but not re-shipped → :class:`EngineError`), then a tiny job makes sure every executor
    Python reports the env id. *env* may also be a ``.pex`` path or URL (or ``mode="pex"``):
    then the check makes sure every executor runs that PEX. *py_files*: extra modules for the
    executors' ``sys.path``, e.g. ``local_modules(__file__)``; *search_path*: where the check
    looks for local modules first; *storage_options*: to read *env* from its store (e.g.
    ``{"endpoint_url": ...}``); *spark_conf*: extra Spark confs (``**{"spark.x": "y"}``).
    """
    from pyspark.sql import SparkSession  # the driver needs pyspark; envship does not

    pex = wants_pex(env, mode)
    the_env = None if pex else Env.coerce(env, storage_options)
    if the_env is not None and check:
        require_code_match(the_env, search_path)
    key, want = (
        (PEX_NAME_CONF, pex_name(env)) if the_env is None  # type: ignore[arg-type]
        else (ENV_ID_CONF, the_env.env_id)
    )
    active = SparkSession.getActiveSession()
    if active is not None:
        running = active.sparkContext.getConf().get(key, None)
        if running != want:
            raise EngineError(
                "a SparkSession is already running in this process"
                + (f" with env {running[:12]}" if running else "")
                + "; stop it (spark.stop()) before starting one for env "
                + (want if the_env is None else want[:12])
            )
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in spark_conf.items():
        builder = builder.config(key, str(value))
    if py_files:
        extra = merge_list(spark_conf.get("spark.submit.pyFiles"), ",".join(py_files))
        builder = builder.config("spark.submit.pyFiles", extra)
    previous = os.environ.get("PYSPARK_PYTHON")
    try:
        builder = configure(
            builder, the_env or env, mode, master=master, cache_dir=cache_dir, presign=presign,
            expires=expires, storage_options=storage_options,
        )
        spark = builder.getOrCreate()
    finally:  # PySpark read it when the context started; do not leak it into this process
        if previous is None:
            os.environ.pop("PYSPARK_PYTHON", None)
        else:
            os.environ["PYSPARK_PYTHON"] = previous
    if check:
        try:
            if the_env is None:
                require_executors_run_pex(spark, want)
            else:
                require_executors_in_env(spark, the_env.env_id)
        except BaseException:
            spark.stop()
            raise
    return spark


def check(
    spark: Any, env: EnvRef | None = None, *, storage_options: Mapping[str, Any] | None = None
) -> list[ExecutorReport]:
    """Raise :class:`EngineError` unless every executor Python of *spark* runs *env* (an env
    reference, or an env id).

    Without *env*, the env recorded in the session's conf by envship (``spark.envship.envId``,
    set by ``envship spark-submit`` / :func:`configure`) is used.
    """
    if env is None:
        env_id = spark.sparkContext.getConf().get(ENV_ID_CONF, None)
        if not env_id:
            raise EngineError(
                "this SparkSession was not configured by envship (no spark.envship.envId); "
                "pass the env to check against"
            )
    else:
        env_id = env if is_hex64(env) else Env.coerce(env, storage_options).env_id
    return require_executors_in_env(spark, env_id)
