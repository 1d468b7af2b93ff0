"""What every Spark delivery mode shares: the request it answers, the boot archive it writes
(the executors' ``python``), and the confs the session check reads back."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "BOOT_ALIAS",
    "DEFAULT_PRESIGN_EXPIRES",
    "ENV_CONF",
    "ENV_ID_CONF",
    "EXECUTOR_PYTHON",
    "MODE_CONF",
    "REDACTION_CONF",
    "SIGNED_URL_REGEX",
    "SPARK_REDACTION",
    "BootArchive",
    "Request",
    "boot_file",
    "redaction_regex",
    "write_boot",
]

BOOT_ALIAS = "envship-boot"  # Spark unpacks the boot archive into ./envship-boot/
EXECUTOR_PYTHON = f"./{BOOT_ALIAS}/python"  # relative to the executor's working directory
DEFAULT_PRESIGN_EXPIRES = 6 * 3600  # presigned URLs outlive most applications
ENV_CONF = "spark.envship.env"  # confs that record what the session was configured with
ENV_ID_CONF = "spark.envship.envId"
MODE_CONF = "spark.envship.mode"
# Spark hides a conf's value in its UI, REST API, event logs and YARN logs when this regex
# matches its key or value. Spark's own default (4.x; 3.x's is a subset) plus what marks a
# presigned URL (its query string: signature, SAS token) or credentials in a URL.
REDACTION_CONF = "spark.redaction.regex"
SPARK_REDACTION = r"(?i)secret|password|token|access[.]?key|credential"
SIGNED_URL_REGEX = r"https?://[^\s?@/]*@|https?://[^\s?]*\?"


def redaction_regex(current: str | None = None) -> str:
    """*current* (default: Spark's own) widened to hide presigned URLs."""
    base = current or SPARK_REDACTION
    return base if SIGNED_URL_REGEX in base else f"{base}|{SIGNED_URL_REGEX}"


@dataclass(frozen=True)
class Request:
    """What a delivery mode is asked for, beside the env."""

    master: str | None = None
    deploy_mode: str = "client"  # client | cluster
    cache_dir: str | None = None  # the node cache on executors ($ENVSHIP_CACHE)
    presign: bool | None = None  # None: each mode decides (see its module)
    expires: int = DEFAULT_PRESIGN_EXPIRES
    boot_dir: Path | None = None  # where boot archives and blob links are written
    spark_home: Path | None = None  # the submitting Spark (None: $SPARK_HOME or pyspark's)
    requested: Sequence[str] = ()  # jars/packages the job adds (e.g. the S3A connector)
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False)

    def boot_root(self) -> Path:
        if self.boot_dir is not None:
            return Path(self.boot_dir)
        from ...paths import envship_home

        return envship_home() / "spark"


@dataclass(frozen=True)
class BootArchive:
    """A deterministic tar.gz: same inputs, same bytes (and so the same file name)."""

    data: bytes
    mode: str  # "archives" | "node-cache"

    @classmethod
    def of(cls, mode: str, files: Mapping[str, tuple[bytes, int]]) -> BootArchive:
        from ...packing.archive import archive_files  # isal: only when a boot is written

        return cls(archive_files(dict(files)), mode)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def file_name(self) -> str:
        return f"{BOOT_ALIAS}-{self.mode}-{self.digest[:16]}.tar.gz"


def boot_file(name: str) -> str:
    """A file of this package that goes into a boot archive (a program, a shell wrapper)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def write_boot(boot: BootArchive, directory: Path) -> Path:
    """Write *boot* as ``directory/<content-addressed name>`` (atomically; kept if present)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / boot.file_name
    if path.exists() and path.stat().st_size == len(boot.data):
        return path
    tmp = directory / f".{boot.file_name}.{os.getpid()}.tmp"
    tmp.write_bytes(boot.data)
    tmp.replace(path)
    return path
