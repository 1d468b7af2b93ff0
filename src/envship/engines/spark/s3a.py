"""Can this Spark read ``s3a://``? Only with Hadoop's S3A connector (the hadoop-aws jar), which
a plain ``pip install pyspark`` lacks; without it, S3 blobs are handed out as presigned URLs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

__all__ = ["has_s3a", "is_s3_url"]

log = logging.getLogger(__name__)

_CONNECTOR = "hadoop-aws"


def is_s3_url(url: str) -> bool:
    return url.startswith(("s3://", "s3a://"))


def has_s3a(spark_home: Path, requested: Iterable[str] = ()) -> bool:
    """True when ``<spark_home>/jars`` holds the S3A connector, or *requested* (the values of
    ``--packages`` / ``--jars`` / ``spark.jars*`` confs the job adds) names it."""
    if any(_CONNECTOR in value for value in requested):
        return True
    jars = spark_home / "jars"
    try:
        return any(p.name.startswith(_CONNECTOR) and p.suffix == ".jar" for p in jars.iterdir())
    except OSError:
        log.debug("no jars directory in %s", spark_home)
        return False
