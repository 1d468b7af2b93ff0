"""``conf()``: the Spark confs that run the executors' Python inside an env, by delivery mode.

A delivery mode is one module with ``confs(env, request) -> dict``; this table chooses it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...env import Env, EnvRef
from ...errors import EngineError
from ...store.io.location import has_signed_url
from . import archives, local, node_cache, pex
from .base import (
    DEFAULT_PRESIGN_EXPIRES,
    ENV_CONF,
    ENV_ID_CONF,
    MODE_CONF,
    REDACTION_CONF,
    Request,
    redaction_regex,
)

__all__ = ["DELIVERY", "LIST_KEYS", "MODES", "conf", "merge_list"]

Confs = Callable[[Any, Request], dict[str, str]]
# mode -> its confs; "local" is chosen by a local[...] master, not by name
DELIVERY: Mapping[str, Confs] = {
    "archives": archives.confs,
    "node-cache": node_cache.confs,
    "pex": pex.confs,
    "local": local.confs,
}
MODES = ("archives", "node-cache", "pex")  # what a user chooses
LIST_KEYS = ("spark.archives", "spark.files", "spark.submit.pyFiles", "spark.jars")


def conf(
    env: EnvRef,
    mode: str = "archives",
    *,
    master: str | None = None,
    deploy_mode: str = "client",
    cache_dir: str | None = None,
    presign: bool | None = None,
    expires: int = DEFAULT_PRESIGN_EXPIRES,
    boot_dir: str | Path | None = None,
    storage_options: Mapping[str, Any] | None = None,
    spark_home: str | Path | None = None,
    requested: Sequence[str] = (),
) -> dict[str, str]:
    """The Spark confs that run the executors' Python inside *env*.

    ``archives``: the layers go in ``spark.files`` / ``spark.archives`` (Spark fetches them per
    application) with a boot archive whose ``python`` assembles them. ``node-cache``: executors
    start through the node runtime, which fetches each layer once per node and reuses it
    across applications. With a ``local[...]`` *master* the env is prepared in this machine's
    node cache instead. A path or URL ending in ``.pex`` (or ``mode="pex"``): the executors run
    that PEX. *presign*: hand out presigned HTTPS URLs (default: in node-cache mode for object
    stores; in archives mode for S3 stores when *spark_home* — the submitting Spark, by
    default ``$SPARK_HOME`` or pyspark's — has no S3A connector and *requested* jars name
    none); *cache_dir*: the node cache on executors (``$ENVSHIP_CACHE``); *storage_options*:
    to read *env* from its store (they never go into a conf).
    """
    if pex.wants_pex(env, mode):
        mode = "pex"
    elif mode not in MODES:
        raise EngineError(f"unknown Spark mode {mode!r}: use one of {', '.join(MODES)}")
    if deploy_mode not in ("client", "cluster"):
        raise EngineError(f"unknown deploy mode {deploy_mode!r}: use client or cluster")
    req = Request(
        master=master, deploy_mode=deploy_mode, cache_dir=cache_dir, presign=presign,
        expires=expires, boot_dir=Path(boot_dir) if boot_dir is not None else None,
        spark_home=Path(spark_home) if spark_home is not None else None,
        requested=tuple(requested), storage_options=storage_options,
    )
    if mode == "pex":
        out = DELIVERY["pex"](env, req)
    else:
        the_env = Env.coerce(env, storage_options)
        out = {ENV_CONF: the_env.uri, ENV_ID_CONF: the_env.env_id, MODE_CONF: mode}
        out.update(DELIVERY["local" if local.is_local_master(master) else mode](the_env, req))
    if any(has_signed_url(v) for v in out.values()):
        # a presigned URL is a bearer credential until it expires: out of Spark's UI and logs
        out[REDACTION_CONF] = redaction_regex()
    return out


def merge_list(*values: str | None) -> str:
    """Join comma-separated Spark list confs, dropping empties and duplicates, keeping order."""
    out: list[str] = []
    for value in values:
        for item in (value or "").split(","):
            item = item.strip()
            if item and item not in out:
                out.append(item)
    return ",".join(out)
