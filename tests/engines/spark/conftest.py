"""Spark fixtures: a real standalone master + worker on 127.0.0.1 whose own python3 is a bare
venv (no numpy/pandas), a job venv shipped to a store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from envship.engines.spark.local_cluster import StandaloneCluster
from kits.sparkkit import JobEnv, job_venv
from kits.support import make_venv, run, write_sample_project


@pytest.fixture(scope="session")
def spark_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spark")


@pytest.fixture(scope="session")
def bare_bin(spark_base: Path) -> Path:
    """bin/ of a venv without numpy or pandas: first on the worker's PATH, so `python3` there
    cannot run the jobs unless the executors really run inside the shipped env."""
    py = make_venv(spark_base / "bare")
    probe = run([str(py), "-c", "import importlib.util as u; print(u.find_spec('numpy'))"])
    assert probe.stdout.strip() == "None"
    return py.parent


@pytest.fixture(scope="session")
def spark_cluster(spark_base: Path, bare_bin: Path) -> Iterator[StandaloneCluster]:
    """One Spark standalone master and one worker (2 cores, 2 GB) shared by the Spark tests."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail("the Spark tests need Java 17 (java on PATH or JAVA_HOME)")
    cluster = StandaloneCluster(
        spark_base / "cluster", cores=2, memory="2g", path_prepend=[bare_bin]
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def job_env(spark_base: Path) -> JobEnv:
    project = write_sample_project(spark_base / "mylib")
    py = job_venv(spark_base / "jobenv", project)
    job_dir = spark_base / "job"
    shutil.copytree(Path(__file__).parent / "jobfiles", job_dir)
    return JobEnv(py, project, job_dir)
