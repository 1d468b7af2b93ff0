"""Test job: numpy, a pandas UDF, applyInPandas and mapPartitions using the editable `mylib`
and the module `jobmod` next to this file. `spark-submit` it, or import `workload`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jobmod
import mylib
import numpy as np
import pandas as pd
from mylib import extra
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import LongType


@pandas_udf(LongType())  # type: ignore[call-overload]
def transform(x: pd.Series) -> pd.Series:
    return extra.double(x) + mylib.VALUE + jobmod.OFFSET + np.int64(0)


def group_sum(pdf: pd.DataFrame) -> pd.DataFrame:
    key = int(pdf["x"].iloc[0] % 2)
    total = int(np.sum(extra.double(pdf["x"].to_numpy())) * mylib.VALUE)
    return pd.DataFrame({"key": [key], "total": [total]})


def where(_: Iterator[Any]) -> Iterator[dict[str, Any]]:
    import os
    import sys

    yield {
        "prefix": sys.prefix,
        "env_id": os.environ.get("ENVSHIP_ENV_ID"),
        "numpy": np.__file__,
        "pandas": pd.__file__,
        "mylib": mylib.__file__,
        "jobmod": jobmod.__file__,
        "value": mylib.VALUE,
    }


def workload(spark: Any) -> dict[str, Any]:
    t0 = time.monotonic()
    df = spark.range(6).toDF("x")
    udf_rows = df.select(transform("x").alias("y")).orderBy("y").collect()
    t_first = time.monotonic() - t0
    groups = (
        df.groupBy((df.x % 2).alias("k"))
        .applyInPandas(lambda pdf: group_sum(pdf), "key long, total long")
        .orderBy("key")
        .collect()
    )
    executors = spark.sparkContext.parallelize(range(2), 2).mapPartitions(where).collect()
    return {
        "udf": [r.y for r in udf_rows],
        "groups": [[r.key, r.total] for r in groups],
        "executors": executors,
        "first_job_seconds": t_first,
    }


def main() -> None:
    from pyspark.sql import SparkSession

    started = time.monotonic()
    spark = SparkSession.builder.getOrCreate()
    try:
        import envship.spark

        checked = envship.spark.check(spark)
        ready = time.monotonic() - started
        result = workload(spark)
        result.update(checked=len(checked), check_seconds=ready)
        print("RESULT " + json.dumps(result, sort_keys=True), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
