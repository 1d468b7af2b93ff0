"""``node-cache`` delivery: executors start through the single-file node runtime, which
fetches each layer once per node into ``$ENVSHIP_CACHE`` and reuses it across applications."""

from __future__ import annotations

import logging
import urllib.parse

from ...env import Env, EnvRef
from ...node.ref import REF_VAR
from .base import BOOT_ALIAS, EXECUTOR_PYTHON, BootArchive, Request, boot_file, write_boot

__all__ = ["ENV_REF_VAR", "confs", "node_cache_boot"]

log = logging.getLogger(__name__)

# The env reference, via spark.executorEnv: in the executors' environment, read by the node
# runtime from there, never on a command line (readable by every user of a node).
ENV_REF_VAR = REF_VAR
_STDLIB_SCHEMES = ("", "file", "http", "https")  # what the node runtime reads without fsspec


def confs(ref: EnvRef, req: Request) -> dict[str, str]:
    """Only the boot archive in ``spark.archives``; the env reference in the executors'
    environment: a presigned manifest URL by default for stores the node runtime cannot read
    with the standard library alone (object stores)."""
    env = Env.coerce(ref, req.storage_options)
    scheme = urllib.parse.urlsplit(env.uri).scheme
    reachable = scheme in _STDLIB_SCHEMES or len(scheme) == 1
    presign = req.presign
    if presign is None:
        presign = not reachable and not env.is_presigned
    uri = env.presigned(req.expires).uri if presign else env.uri
    if not presign and not reachable:
        log.warning(
            "node-cache mode with %s: executors need fsspec and its %s:// driver and "
            "credentials in their bootstrap python3; pass presign=True otherwise", env.uri, scheme
        )
    boot = write_boot(node_cache_boot(env.manifest.python.major_minor), req.boot_root())
    environ = {ENV_REF_VAR: uri}
    if req.cache_dir:
        environ["ENVSHIP_CACHE"] = req.cache_dir
    out = {"spark.archives": f"{boot}#{BOOT_ALIAS}", "spark.pyspark.python": EXECUTOR_PYTHON}
    prefixes = ["spark.executorEnv."]
    if req.deploy_mode == "cluster":  # the driver runs on a node too, through the same wrapper
        prefixes += ["spark.yarn.appMasterEnv.", "spark.kubernetes.driverEnv."]
    for prefix in prefixes:
        for key, value in environ.items():
            out[prefix + key] = value
    return out


def node_cache_boot(version: str) -> BootArchive:
    """Boot for node-cache mode: `python` that runs the single-file node runtime. The env is
    named at run time by ``$ENVSHIP_ENV``, so one archive serves every env of a version."""
    from ...node.script import script_text

    sh = boot_file("node_cache_python.sh").replace("@REF_VAR@", ENV_REF_VAR)
    return BootArchive.of("node-cache", {
        "python": (sh.replace("@VERSION@", version).encode(), 0o755),
        "envship_node.py": (script_text().encode(), 0o644),
    })
