"""Example PySpark job: a pandas UDF, applyInPandas and mapPartitions, all running code from a
local package (`wordstats`, installed editable) and from a module next to this script
(`textdata`) inside the env envship shipped. Prints a JSON line starting with `RESULT `."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pandas as pd
import textdata
import wordstats
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import DoubleType


@pandas_udf(DoubleType())  # type: ignore[call-overload]
def line_score(lines: pd.Series) -> pd.Series:
    return wordstats.score(lines.map(textdata.normalize))


def by_category(group: pd.DataFrame) -> pd.DataFrame:
    return wordstats.summarize(group.assign(line=group["line"].map(textdata.normalize)))


def where_am_i(_: Iterator[object]) -> Iterator[dict[str, object]]:
    import os

    import numpy

    yield {
        "prefix": sys.prefix,
        "executable": sys.executable,
        "env_id": os.environ.get("ENVSHIP_ENV_ID"),
        "numpy": numpy.__version__,
        "numpy_file": numpy.__file__,
        "wordstats_file": wordstats.__file__,
        "textdata_file": textdata.__file__,
        "weight": wordstats.WEIGHT,
    }


def main() -> None:
    spark = SparkSession.builder.appName("envship-example").getOrCreate()
    try:
        checked = None
        if spark.sparkContext.getConf().get("spark.envship.envId", None):
            import envship.spark  # the driver runs in the local env, where envship is installed

            checked = len(envship.spark.check(spark))
        df = spark.createDataFrame(textdata.CORPUS, "category string, line string")
        scored = df.withColumn("score", line_score("line")).orderBy("line").collect()
        summary = (
            df.groupBy("category")
            .applyInPandas(
                by_category, "category string, lines long, words long, mean_score double"
            )
            .orderBy("category")
            .collect()
        )
        executors = df.rdd.repartition(2).mapPartitions(where_am_i).collect()
        result = {
            "scores": {r["line"]: r["score"] for r in scored},
            "summary": [r.asDict() for r in summary],
            "executors": executors,
            "checked_processes": checked,
        }
        print("RESULT " + json.dumps(result, sort_keys=True), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
