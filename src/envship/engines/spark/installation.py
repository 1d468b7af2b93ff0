"""The Spark installation behind a ``spark-submit``: its version and the
``spark-defaults.conf`` it reads."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["defaults_file", "spark_version"]

_RELEASE = re.compile(r"Spark (\d+)\.(\d+)")
_CORE_JAR = re.compile(r"spark-core_[\d.]+-(\d+)\.(\d+)[.\d]*.*\.jar$")


def spark_version(spark_home: Path) -> tuple[int, int] | None:
    """(major, minor) of the Spark in *spark_home*: from its ``RELEASE`` file (a
    distribution), else the name of ``jars/spark-core_*.jar`` (pyspark); None if neither says."""
    try:
        found = _RELEASE.search((spark_home / "RELEASE").read_text(errors="replace")[:200])
    except OSError:
        found = None
    if found is None:
        try:
            names = sorted(p.name for p in (spark_home / "jars").glob("spark-core_*.jar"))
        except OSError:
            names = []
        found = next((m for m in map(_CORE_JAR.match, names) if m), None)
    return (int(found.group(1)), int(found.group(2))) if found else None


def defaults_file(spark_home: Path | None) -> Path | None:
    """The ``spark-defaults.conf`` spark-submit reads: in ``$SPARK_CONF_DIR``, else in
    ``conf/`` of ``$SPARK_HOME`` (else of *spark_home*, where spark-submit sets it); None if
    there is none."""
    conf_dir = os.environ.get("SPARK_CONF_DIR")
    if conf_dir:
        directory: Path | None = Path(conf_dir)
    else:
        home = os.environ.get("SPARK_HOME")
        directory = Path(home) / "conf" if home else spark_home / "conf" if spark_home else None
    if directory is None or not (directory / "spark-defaults.conf").is_file():
        return None
    return directory / "spark-defaults.conf"
