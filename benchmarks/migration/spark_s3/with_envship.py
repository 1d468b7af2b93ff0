"""cluster-pack's examples/spark-with-S3/scripts/spark_example.py: pandas_udf grouped agg,
env on S3.

Changed for this machine (identical in both files of the pair): the master comes from
SPARK_MASTER and the S3 endpoint from S3_ENDPOINT (an S3 server on 127.0.0.1 instead of
minio in docker-compose).
"""

import logging
import os

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import PandasUDFType, pandas_udf

import envship
import envship.spark

logging.basicConfig(level="INFO")

_logger = logging.getLogger(__name__)


if __name__ == "__main__":
    # use local minio S3 instance
    # allowed parameters are here:
    # https://s3fs.readthedocs.io/en/latest/api.html#s3fs.core.S3FileSystem
    s3_args = {"use_ssl": False, "client_kwargs": {"endpoint_url": os.environ["S3_ENDPOINT"]}}
    env = envship.ship("s3://test/envs", storage_options=s3_args)

    ssb = SparkSession.builder.master(os.environ["SPARK_MASTER"])
    # no S3A connector in this Spark: executors get presigned URLs of the layers
    spark = envship.spark.configure(ssb, env).getOrCreate()

    # https://spark.apache.org/docs/2.4.4/sql-pyspark-pandas-with-arrow.html#grouped-map
    # envship will ship pyarrow & pandas to the executor

    df = spark.createDataFrame(
        [(1, 1.0), (1, 2.0), (2, 3.0), (2, 5.0), (2, 10.0)], ("id", "v")
    )

    @pandas_udf("double", PandasUDFType.GROUPED_AGG)
    def mean_udf(v: pd.Series) -> float:
        return v.mean()

    pd_df = df.groupby("id").agg(mean_udf(df["v"])).toPandas()

    _logger.info(pd_df)
