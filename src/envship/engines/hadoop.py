"""URLs as Hadoop (Spark, YARN) reads them: fsspec's ``s3://`` is Hadoop's ``s3a://``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["HADOOP_SCHEMES", "hadoop_url"]

HADOOP_SCHEMES: Mapping[str, str] = {"s3": "s3a"}  # fsspec scheme -> Hadoop's


def hadoop_url(
    url: str, schemes: Mapping[str, str] = HADOOP_SCHEMES, *, local_as_file: bool = False
) -> str:
    """*url* with its scheme mapped by *schemes*; with *local_as_file*, a plain local path
    becomes an absolute ``file://`` URL (what YARN resources need)."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # no scheme (or a Windows drive letter)
        return "file://" + os.path.abspath(url) if local_as_file else url
    new = schemes.get(parts.scheme)
    return new + url[len(parts.scheme):] if new else url
