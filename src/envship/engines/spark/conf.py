"""Spark confs that make executors run inside an env: `archives` and `node-cache` delivery."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import EngineError
from ..hadoop import hadoop_url
from .boot import (
    BOOT_ALIAS,
    ENV_REF_VAR,
    archive_aliases,
    archives_boot,
    node_cache_boot,
    write_boot,
)
from .master import is_local_master

if TYPE_CHECKING:
    from ...env import Env

__all__ = [
    "MODES",
    "EXECUTOR_PYTHON",
    "LIST_KEYS",
    "conf",
    "open_env",
    "is_local_master",
    "merge_list",
    "hadoop_url",
]

log = logging.getLogger(__name__)

MODES = ("archives", "node-cache", "pex")
EXECUTOR_PYTHON = f"./{BOOT_ALIAS}/python"  # relative to the executor's working directory
LIST_KEYS = ("spark.archives", "spark.files", "spark.submit.pyFiles", "spark.jars")
DEFAULT_PRESIGN_EXPIRES = 6 * 3600

_STDLIB_SCHEMES = ("", "file", "http", "https")


def open_env(env: Env | str) -> Env:
    """An :class:`Env` from an Env or an env / tag URI (reads the manifest from the store)."""
    from ...env import Env

    if isinstance(env, Env):
        return env
    if not isinstance(env, str) or not env:
        raise EngineError(
            f"{env!r} is not an env: pass the Env returned by envship.ship() or the env URI "
            "printed by `envship ship`"
        )
    return Env.open(env)




def merge_list(*values: str | None) -> str:
    """Join comma-separated Spark list confs, dropping empties and duplicates, keeping order."""
    out: list[str] = []
    for value in values:
        for item in (value or "").split(","):
            item = item.strip()
            if item and item not in out:
                out.append(item)
    return ",".join(out)


def conf(
    env: Env | str,
    mode: str = "archives",
    *,
    master: str | None = None,
    deploy_mode: str = "client",
    cache_dir: str | None = None,
    presign: bool | None = None,
    expires: int = DEFAULT_PRESIGN_EXPIRES,
    boot_dir: str | Path | None = None,
) -> dict[str, str]:
    """The Spark confs that run the executors' Python inside *env*.

    ``archives``: the layers go in ``spark.archives`` (Spark fetches them per application) with
    a boot archive whose ``python`` assembles them. ``node-cache``: executors start through the
    node runtime, which fetches each layer once per node and reuses it across applications.
    With a ``local[...]`` *master* the env is prepared in this machine's node cache instead.
    *presign*: hand out presigned HTTPS URLs (default: only in node-cache mode for object
    stores); *cache_dir*: the node cache on executors (``$ENVSHIP_CACHE``). A path or URL
    ending in ``.pex`` (or ``mode="pex"``): the executors run that PEX (see ``spark_pex``).
    """
    from .pex import pex_conf, wants_pex

    if wants_pex(env, mode):
        return pex_conf(env, master=master)
    if mode not in MODES:
        raise EngineError(f"unknown Spark mode {mode!r}: use one of {', '.join(MODES)}")
    if deploy_mode not in ("client", "cluster"):
        raise EngineError(f"unknown deploy mode {deploy_mode!r}: use client or cluster")
    the_env = open_env(env)
    out: dict[str, str] = {
        "spark.envship.env": the_env.uri,
        "spark.envship.envId": the_env.env_id,
        "spark.envship.mode": mode,
    }
    if is_local_master(master):
        out.update(_local_conf(the_env, cache_dir))
        return out
    boot_root = Path(boot_dir) if boot_dir is not None else _default_boot_dir()
    if mode == "archives":
        out.update(_archives_conf(the_env, presign, expires, boot_root))
    else:
        out.update(_node_cache_conf(the_env, presign, expires, boot_root, cache_dir, deploy_mode))
    return out


def _default_boot_dir() -> Path:
    from ...paths import envship_home

    return envship_home() / "spark"


def _archives_conf(env: Env, presign: bool | None, expires: int, boot_root: Path) -> dict[str, str]:
    if presign and not env.is_presigned:
        env = env.presigned(expires)
    store = None if env.is_presigned else env.store()
    archives = []
    for lay, alias in zip(env.manifest.layers, archive_aliases(env.manifest), strict=True):
        if lay.url:
            url = lay.url
        else:
            assert store is not None
            url = hadoop_url(store.blob_url(lay.digest))
        archives.append(f"{url}#{alias}")
    boot = write_boot(archives_boot(env.manifest), boot_root)
    archives.append(f"{boot}#{BOOT_ALIAS}")
    out = {
        "spark.archives": ",".join(archives),
        "spark.pyspark.python": EXECUTOR_PYTHON,
    }
    if store is not None:
        out.update(_s3a_options(store.url, store.storage_options))
    return out


def _node_cache_conf(
    env: Env,
    presign: bool | None,
    expires: int,
    boot_root: Path,
    cache_dir: str | None,
    deploy_mode: str,
) -> dict[str, str]:
    scheme = urllib.parse.urlsplit(env.uri).scheme
    reachable = scheme in _STDLIB_SCHEMES or len(scheme) == 1
    if presign is None:
        presign = not reachable and not env.is_presigned
    ref = env.presigned(expires).uri if presign else env.uri
    if not presign and not reachable:
        log.warning(
            "node-cache mode with %s: executors need fsspec and its %s:// driver and "
            "credentials in their bootstrap python3; pass presign=True otherwise", env.uri, scheme
        )
    boot = write_boot(node_cache_boot(env.manifest.python.major_minor), boot_root)
    environ = {ENV_REF_VAR: ref}
    if cache_dir:
        environ["ENVSHIP_CACHE"] = cache_dir
    out = {
        "spark.archives": f"{boot}#{BOOT_ALIAS}",
        "spark.pyspark.python": EXECUTOR_PYTHON,
    }
    prefixes = ["spark.executorEnv."]
    if deploy_mode == "cluster":  # the driver runs on a node too, through the same wrapper
        prefixes += ["spark.yarn.appMasterEnv.", "spark.kubernetes.driverEnv."]
    for prefix in prefixes:
        for key, value in environ.items():
            out[prefix + key] = value
    return out


def _local_conf(env: Env, cache_dir: str | None) -> dict[str, str]:
    """local[...]: Python workers are children of this JVM, on this machine — use a view in this
    machine's node cache (Spark unpacks archives where a relative python path cannot reach)."""
    from ...node import NodeError, prepare

    try:
        view = prepare(env.uri, cache_dir=cache_dir)
    except NodeError as exc:
        raise EngineError(f"cannot prepare env {env.env_id[:12]} for local Spark: {exc}") from exc
    out = {"spark.pyspark.python": view.python}
    if cache_dir:
        out["spark.executorEnv.ENVSHIP_CACHE"] = cache_dir
    return out


def _s3a_options(store_url: str, options: Mapping[str, Any]) -> dict[str, str]:
    """S3A settings an S3 store needs beyond credentials (which stay out of confs)."""
    if not store_url.startswith(("s3://", "s3a://")):
        return {}
    client = options.get("client_kwargs") or {}
    endpoint = options.get("endpoint_url") or (
        client.get("endpoint_url") if isinstance(client, Mapping) else None
    )
    if not endpoint:
        return {}
    return {
        "spark.hadoop.fs.s3a.endpoint": str(endpoint),
        "spark.hadoop.fs.s3a.path.style.access": "true",
    }
