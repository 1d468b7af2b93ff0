"""cluster-pack's examples/spark/spark_example.py: numpy intersection on Spark.

Changed for this machine (identical in both files of the pair): the master comes from
SPARK_MASTER (a standalone cluster instead of YARN), the env goes to a local directory
(ENV_STORE) instead of HDFS, pyspark and py4j stay out of the env (the cluster has Spark).
"""

import os

import numpy as np
from pyspark.sql import SparkSession

import envship
import envship.spark

if __name__ == "__main__":
    env = envship.ship(os.environ["ENV_STORE"])  # pyspark and py4j are left out by default

    ssb = (
        SparkSession.builder.appName("spark_app")
        .master(os.environ["SPARK_MASTER"])
        .config("spark.submit.deployMode", "client")
        .config("spark.driver.memory", "1g")
        .config("spark.executor.memory", "1g")
        .config("spark.executor.memoryOverhead", "1g")
        .config("spark.executor.cores", "1")
        .config("spark.acls.enable", "true")
        .config("spark.ui.view.acls", "*")
    )

    ss = envship.spark.configure(ssb, env).getOrCreate()

    # create 2 arrays with random ints range 0 to 100
    a = np.random.random_integers(0, 100, 100)
    b = np.random.random_integers(0, 100, 100)

    # compute intersection of 2 arrays on the worker
    def compute_intersection(x):
        first, second = x
        return np.intersect1d(first, second)

    rdd = ss.sparkContext.parallelize([(a, b)], numSlices=1)
    res = rdd.map(compute_intersection).collect()
    print(f"intersection of arrays len={len(res)} res={res}")
