"""A conda env (real packages, installed with py-rattler, then moved away) runs a PySpark job in
archives and node-cache mode: the executors' Python is the env's, its C library and activation
take effect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envship.engines.spark.local_cluster import StandaloneCluster
from envship.shipping import ship_result
from kits.condakit import CondaKit, install_env

pytestmark = pytest.mark.spark

ENVSHIP = str(Path(sys.executable).parent / "envship")
JOB = '''\
import json
from pyspark.sql import SparkSession

def probe(_):
    import os, subprocess, sys
    import pyfoo
    tool = subprocess.run(["foo"], capture_output=True, text=True)
    yield json.dumps({"prefix": sys.prefix, "answer": pyfoo.answer(), "datadir": pyfoo.datadir(),
                      "FOO_DATA": os.environ.get("FOO_DATA"), "foo": tool.stdout})

spark = SparkSession.builder.getOrCreate()
rows = spark.sparkContext.parallelize(range(2), 2).mapPartitions(probe).collect()
print("RESULT " + json.dumps([json.loads(r) for r in rows]))
spark.stop()
'''


@pytest.mark.parametrize("mode", ["archives", "node-cache"])
def test_spark_job_runs_in_a_moved_conda_env(
    spark_cluster: StandaloneCluster, conda_kit: CondaKit, tmp_path: Path, mode: str
) -> None:
    prefix = tmp_path / "conda-env"
    install_env(conda_kit, prefix, tmp_path / "pkgs")
    env = ship_result(str(tmp_path / "store"), python=str(prefix / "bin" / "python")).env
    prefix.rename(tmp_path / "moved-away")
    job = tmp_path / "job.py"
    job.write_text(JOB)
    clean = {k: v for k, v in os.environ.items()
             if k not in ("VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH")}
    proc = subprocess.run(
        [ENVSHIP, "spark-submit", env.uri, "--mode", mode, "--master",
         spark_cluster.master_url, "--conf", "spark.executor.memory=1g",
         "--conf", "spark.task.maxFailures=1", "--conf", "spark.ui.enabled=false", str(job)],
        capture_output=True, text=True, timeout=900, env=clean, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    rows = json.loads(line[len("RESULT "):])
    assert len(rows) == 2
    for row in rows:
        view = row["prefix"]
        # archives: the executor's own view; node-cache: the node cache's, shared by executors
        assert view.endswith("envship-view") if mode == "archives" else (
            Path(view).parent.name == "envs" and Path(view).name == env.env_id)
        assert row["answer"] == 42
        assert row["foo"] == "foo 42 data of libfoo\n"
        assert row["FOO_DATA"] == f"{view}/share/foo"
        assert row["datadir"].endswith("/share/foo")
