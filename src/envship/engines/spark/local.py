"""``local[...]`` masters: the Python workers are children of this JVM, on this machine, where
a relative ``./envship-boot/python`` cannot be resolved; they run a view in this machine's
node cache instead, whatever the mode."""

from __future__ import annotations

import logging
import re
import urllib.parse

from ...env import Env, EnvRef
from ...errors import EngineError, EnvshipError
from .base import Request

__all__ = ["confs", "is_local_master"]

log = logging.getLogger(__name__)

_LOCAL_MASTER = re.compile(r"^local(\[[^\]]*\])?$")


def is_local_master(master: str | None) -> bool:
    """True for ``local``, ``local[N]``, ``local[*]``, ``local[N,F]``: executors in the driver."""
    return master is not None and bool(_LOCAL_MASTER.match(master.strip()))


def confs(ref: EnvRef, req: Request) -> dict[str, str]:
    """``spark.pyspark.python`` = the env view's python, prepared here. A store the node
    runtime would read with fsspec but without this call's storage options (a custom
    endpoint) is read through a presigned manifest instead."""
    from ...node import NodeError, prepare

    env = Env.coerce(ref, req.storage_options)
    uri = env.uri
    scheme = urllib.parse.urlsplit(uri).scheme
    if env.storage_options and len(scheme) > 1 and scheme not in ("file", "http", "https"):
        try:
            uri = env.presigned(req.expires).uri
        except EnvshipError as exc:  # a store that cannot sign: fsspec's own configuration
            log.debug("cannot presign %s for the local node runtime: %s", uri, exc)
    try:
        view = prepare(uri, cache_dir=req.cache_dir)
    except NodeError as exc:
        raise EngineError(f"cannot prepare env {env.env_id[:12]} for local Spark: {exc}") from exc
    out = {"spark.pyspark.python": view.python}
    if req.cache_dir:
        out["spark.executorEnv.ENVSHIP_CACHE"] = req.cache_dir
    return out
