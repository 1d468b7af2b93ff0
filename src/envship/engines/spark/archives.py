"""``archives`` delivery: Spark fetches the layers per application (``spark.files`` /
``spark.archives``) and the boot archive's ``python`` unpacks them once per executor."""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...env import Env, EnvRef
from ...errors import EngineError
from ...node import formats
from ...packing.manifest import Manifest
from ..hadoop import hadoop_url
from .base import BOOT_ALIAS, EXECUTOR_PYTHON, BootArchive, Request, boot_file, write_boot

__all__ = [
    "LINK_DAYS",
    "LINK_SUFFIX",
    "archive_aliases",
    "archives_boot",
    "confs",
    "has_s3a",
    "layer_alias",
    "presign_for_missing_s3a",
]

log = logging.getLogger(__name__)

VIEW_DIR = "envship-view"  # the env view the boot assembles next to the layers
LINK_DIR = "blobs"  # $ENVSHIP_HOME/spark/blobs/: links to store blobs (not a store layout)
LINK_SUFFIX = ".blob"  # not .tar.gz: Spark untars spark.files entries named *.tar.gz / *.tgz
# A blob link no submission used for this long is removed (the store keeps its blob): the
# links hold disk space a store gc would otherwise free. Generous, for applications that run
# for days and still add executors.
LINK_DAYS = 14
_S3A_CONNECTOR = "hadoop-aws"


def confs(ref: EnvRef, req: Request) -> dict[str, str]:
    """Blobs of a local store in ``spark.files`` (fetched as they are, unpacked by the boot on
    the executor with the node runtime); the `python` layer, blobs at remote URLs and the boot
    in ``spark.archives``. Presigned HTTPS URLs with *presign*, or by default when the store
    is on S3 and the submitting Spark has no S3A connector."""
    env = Env.coerce(ref, req.storage_options)
    presign = req.presign
    if presign is None:
        presign = presign_for_missing_s3a(env, req.spark_home, req.requested)
    if presign and not env.is_presigned:
        env = env.presigned(req.expires)
    store = None if env.is_presigned else env.store()
    boot_root = req.boot_root()
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
        _sweep_links(boot_root / LINK_DIR)  # after this env's stamps are renewed
    boot = write_boot(archives_boot(env.manifest, names, unpacked), boot_root)
    archives.append(f"{boot}#{BOOT_ALIAS}")
    out = {"spark.archives": ",".join(archives), "spark.pyspark.python": EXECUTOR_PYTHON}
    if files:
        out["spark.files"] = ",".join(files)
    if store is not None:
        out.update(_s3a_options(store.url, store.storage_options))
    return out


def layer_alias(kind: str, digest: str | None = None) -> str:
    """The directory name Spark unpacks a layer into (``<blob url>#<alias>``).

    ``envship-<kind>`` for the one layer of each kind of a schema-1 env and for the `python`
    layer; ``envship-<kind>-<hex12>`` for the many `code` / `dist` layers of schema 2 and 3.
    """
    if digest is None or kind == "python":
        return f"envship-{kind}"
    return f"envship-{kind}-{formats.digest_hex(digest)[:12]}"


def archive_aliases(manifest: Manifest) -> list[str]:
    """The alias of every layer of *manifest*, in manifest order."""
    merged = formats.is_merged({"schema": manifest.schema_id})
    return [layer_alias(lay.kind, lay.digest if merged else None) for lay in manifest.layers]


def archives_boot(
    manifest: Manifest,
    files: Mapping[str, str] | None = None,
    unpacked: Mapping[str, str] | None = None,
) -> BootArchive:
    """Boot for archives mode: `python`, `boot.py`, `boot.json`, the node runtime, the manifest.

    *files*: layer digest -> the file name its blob arrives as through ``spark.files``;
    *unpacked*: layer digest -> the directory Spark unpacks it into (``spark.archives``).
    By default every layer but `python` is a file ``<hex>.blob``; `python` is unpacked by
    Spark into ``envship-python`` (the wrapper runs boot with its interpreter).
    """
    from ...node.script import script_text

    version = manifest.python.major_minor
    if files is None and unpacked is None:
        files = {lay.digest: lay.hex + LINK_SUFFIX for lay in manifest.layers
                 if lay.kind != "python"}
        unpacked = {lay.digest: layer_alias("python") for lay in manifest.layers
                    if lay.kind == "python"}
    blobs = {formats.digest_hex(d): name for d, name in (files or {}).items()}
    dirs = {formats.digest_hex(d): alias for d, alias in (unpacked or {}).items()}
    if set(blobs) | set(dirs) != {lay.hex for lay in manifest.layers} or set(blobs) & set(dirs):
        raise ValueError("every layer must arrive exactly once, as a file or unpacked")
    sh = _fill(boot_file("archives_python.sh"), ENV_ID=manifest.env_id,
               ENV_ID_SHORT=manifest.env_id[:12], VERSION=version,
               PYTHON_ALIAS=layer_alias("python"))
    config = {
        "env_id": manifest.env_id, "version": version, "view": VIEW_DIR,
        "manifest": list(formats.env_key(manifest.env_id)), "blob_dir": list(formats.BLOBS),
        "blob_suffix": formats.BLOB_SUFFIX, "blobs": blobs, "unpacked": dirs,
    }
    stored = manifest.hashed_dict()  # no layer URLs: the node runtime reads the blobs here
    return BootArchive.of("archives", {
        "python": (sh.encode(), 0o755),
        "boot.py": (boot_file("archives_boot.py").encode(), 0o644),
        "boot.json": (formats.canonical_json(config), 0o644),
        "envship_node.py": (script_text().encode(), 0o644),
        "/".join(("store", *formats.env_key(manifest.env_id))): (
            formats.canonical_json(stored), 0o644),
    })


def _fill(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    return template


def presign_for_missing_s3a(
    env: Env, spark_home: Path | None, requested: Iterable[str] = ()
) -> bool | None:
    """True (with a notice) when *env* lives on S3 but the submitting Spark cannot read
    ``s3a://`` URLs: the rule of ``envship spark-submit`` and of the Python API alike."""
    if env.is_presigned or not env.store_url.startswith(("s3://", "s3a://")):
        return None
    if spark_home is None:
        from .local_cluster import find_spark_home

        try:
            spark_home = find_spark_home()
        except EngineError:
            return None  # no Spark here: the confs are for a Spark elsewhere
    if has_s3a(spark_home, requested):
        return None
    log.warning(
        "%s has no S3A connector (hadoop-aws): executors get presigned HTTPS URLs of the "
        "layers instead (presign=False / --no-presign if the cluster's Spark has S3A)",
        spark_home,
    )
    return True


def has_s3a(spark_home: Path, requested: Iterable[str] = ()) -> bool:
    """Can this Spark read ``s3a://``? Only with Hadoop's S3A connector (the hadoop-aws jar):
    in ``<spark_home>/jars``, or named by *requested* (the ``--packages`` / ``--jars`` /
    ``spark.jars*`` values the job adds). A plain ``pip install pyspark`` lacks it."""
    if any(_S3A_CONNECTOR in value for value in requested):
        return True
    try:
        return any(p.name.startswith(_S3A_CONNECTOR) and p.suffix == ".jar"
                   for p in (spark_home / "jars").iterdir())
    except OSError:
        log.debug("no jars directory in %s", spark_home)
        return False


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


def _local_path(url: str) -> Path | None:
    """The local file a blob URL names (a path or ``file://``), or None for remote URLs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path))
    if not parts.scheme:
        return Path(url)
    return None


def _blob_link(blob: Path, hex_: str, boot_root: Path) -> Path:
    """``<boot_root>/blobs/<hex>.blob``: the store's *blob* under the name spark.files gives
    it on the executors (a ``.tar.gz`` name would make Spark untar it). A hard link (Spark
    resolves symlinks to their target's name), copied where links fail; kept for reuse, with
    a ``<hex>.used`` stamp (touching the link would change the store blob's mtime, which gc's
    grace period reads); links whose stamp is older than :data:`LINK_DAYS` are swept by
    :func:`_sweep_links`."""
    directory = boot_root / LINK_DIR
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / f"{hex_}{LINK_SUFFIX}"
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
            (directory / f"{stamp.stem}{LINK_SUFFIX}").unlink(missing_ok=True)
            stamp.unlink()
        except OSError as exc:  # another submission's sweep, a read-only dir: only disk space
            log.debug("cannot sweep %s: %s", stamp, exc)

