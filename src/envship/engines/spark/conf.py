"""Spark confs that make executors run inside an env: `archives` and `node-cache` delivery."""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import EngineError
from ..hadoop import hadoop_url
from .boot import (
    BLOB_SUFFIX,
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
    """Blobs of a local store in ``spark.files`` (fetched as they are, unpacked by the boot on
    the executor with the node runtime); the `python` layer, blobs at remote URLs and the boot
    in ``spark.archives``."""
    if presign and not env.is_presigned:
        env = env.presigned(expires)
    store = None if env.is_presigned else env.store()
    files: list[str] = []
    archives: list[str] = []
    names: dict[str, str] = {}
    unpacked: dict[str, str] = {}
    for lay, alias in zip(env.manifest.layers, archive_aliases(env.manifest), strict=True):
        if lay.url:
            url = lay.url
        else:
            assert store is not None
            url = hadoop_url(store.blob_url(lay.digest))
        local = _local_path(url)
        if lay.kind == "python" or local is None:
            # The python layer runs boot itself. A remote blob keeps its <hex>.tar.gz name,
            # which Spark would untar in spark.files: as an archive it is unpacked once.
            archives.append(f"{url}#{alias}")
            unpacked[lay.digest] = alias
            continue
        link = _blob_link(local, lay.hex, boot_root)
        files.append(str(link))
        names[lay.digest] = link.name
    if files:
        _sweep_links(boot_root / "blobs")  # after this env's stamps are renewed
    boot = write_boot(archives_boot(env.manifest, names, unpacked), boot_root)
    archives.append(f"{boot}#{BOOT_ALIAS}")
    out = {"spark.archives": ",".join(archives), "spark.pyspark.python": EXECUTOR_PYTHON}
    if files:
        out["spark.files"] = ",".join(files)
    if store is not None:
        out.update(_s3a_options(store.url, store.storage_options))
    return out


def _local_path(url: str) -> Path | None:
    """The local file a blob URL names (a path or ``file://``), or None for remote URLs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path))
    if not parts.scheme:
        return Path(url)
    return None


# A blob link no submission used for this long is removed (the store keeps its blob): the
# links hold disk space a store gc would otherwise free. Generous, for applications that run
# for days and still add executors.
LINK_DAYS = 14


def _blob_link(blob: Path, hex_: str, boot_root: Path) -> Path:
    """``<boot_root>/blobs/<hex>.blob``: the store's *blob* under the name spark.files gives
    it on the executors (a ``.tar.gz`` name would make Spark untar it). A hard link (Spark
    resolves symlinks to their target's name), copied where links fail; kept for reuse, with
    a ``<hex>.used`` stamp (touching the link would change the store blob's mtime, which gc's
    grace period reads); links whose stamp is older than :data:`LINK_DAYS` are swept by
    :func:`_sweep_links`."""
    directory = boot_root / "blobs"
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / f"{hex_}{BLOB_SUFFIX}"
    try:
        size = blob.stat().st_size
    except OSError as exc:
        raise EngineError(f"layer blob {blob} of the env is not in its store "
                          f"({exc.strerror or exc}): ship the env again") from None
    (directory / f"{hex_}.used").touch()
    if not (link.exists() and link.stat().st_size == size):
        tmp = directory / f".{link.name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(blob, tmp)
        except OSError:
            import shutil

            shutil.copyfile(blob, tmp)
        tmp.replace(link)
    return link


def _sweep_links(directory: Path) -> None:
    import time

    cutoff = time.time() - LINK_DAYS * 86400
    for stamp in directory.glob("*.used"):
        try:
            if stamp.stat().st_mtime >= cutoff:
                continue
            (directory / f"{stamp.stem}{BLOB_SUFFIX}").unlink(missing_ok=True)
            stamp.unlink()
        except OSError as exc:  # another submission's sweep, a read-only dir: only disk space
            log.debug("cannot sweep %s: %s", stamp, exc)


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
