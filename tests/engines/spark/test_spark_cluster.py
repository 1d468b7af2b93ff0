"""End to end on a real Spark standalone cluster whose own python3 has no numpy/pandas: the
jobs pass only if the executors run inside the shipped env."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from envship.engines.spark.local_cluster import StandaloneCluster
from envship.shipping import ship_result
from kits.sparkkit import CountingStore, JobEnv, parse_result

pytestmark = pytest.mark.spark

CONFS = [
    "--conf", "spark.executor.memory=1g", "--conf", "spark.executor.cores=2",
    "--conf", "spark.task.maxFailures=1", "--conf", "spark.ui.enabled=false",
    "--conf", "spark.sql.shuffle.partitions=2", "--conf", "spark.default.parallelism=2",
]


def expected(value: int) -> dict[str, Any]:
    return {
        "udf": [2 * x + value + 100 for x in range(6)],
        "groups": [[0, 2 * (0 + 2 + 4) * value], [1, 2 * (1 + 3 + 5) * value]],
    }


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH")}


def _drive(job_env: JobEnv, out: Path, master: str, mode: str, cache: Path,
           *envs: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(job_env.python), str(job_env.job_dir / "spark_driver.py"), str(out), master, mode,
         str(cache), *envs],
        capture_output=True, text=True, timeout=900, env=_env(), cwd=out.parent,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_archives_mode_spark_submit_runs_the_job_inside_the_env(
    spark_cluster: StandaloneCluster, job_env: JobEnv, tmp_path: Path
) -> None:
    env = ship_result(str(tmp_path / "store"), python=str(job_env.python)).env
    proc = subprocess.run(
        [job_env.envship, "-v", "spark-submit", env.uri, "--mode", "archives",
         "--master", spark_cluster.master_url, *CONFS, str(job_env.job_dir / "spark_job.py")],
        capture_output=True, text=True, timeout=900, env=_env(), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]
    assert "--conf spark.pyspark.python=./envship-boot/python" in proc.stderr  # -v
    result = parse_result(proc.stdout)
    assert {k: result[k] for k in ("udf", "groups")} == expected(1)
    assert result["checked"] >= 2
    work = spark_cluster.work_dir / "worker"
    blobs = {f"{lay.hex}.blob" for lay in env.manifest.layers}  # not .tar.gz: Spark untars
    for ex in result["executors"]:
        prefix = Path(ex["prefix"])  # work/app-…/<executor>/envship-view: the executor's dir
        assert prefix.name == "envship-view" and prefix.is_relative_to(work)
        assert ex["env_id"] == env.env_id
        executor_dir = prefix.parent
        # the blobs came as plain files (spark.files), Spark unpacked none of them; the boot
        # verified and unpacked them once into the executor's own node cache
        assert blobs <= {p.name for p in executor_dir.iterdir()}
        assert not list(executor_dir.glob("envship-dist-*"))
        assert not (executor_dir / "site-packages").exists()  # what Spark's untar would leave
        assert "layer blobs verified and unpacked" in (executor_dir / "stderr").read_text()
        layers = list((executor_dir / "envship-cache" / "layers").iterdir())
        for mod in ("numpy", "pandas", "mylib"):  # one site-packages, linked from the layers
            assert _linked_from(Path(ex[mod]), prefix, layers)
        assert Path(ex["jobmod"]).is_relative_to(work)  # next to the job: spark.submit.pyFiles
        assert ex["value"] == 1


def test_node_cache_mode_fetches_once_per_node_and_sees_reshipped_code(
    spark_cluster: StandaloneCluster, job_env: JobEnv, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    served = CountingStore(store)
    cache = tmp_path / "node-cache"
    init = job_env.project / "src" / "mylib" / "__init__.py"
    original = init.read_text()
    try:
        first = ship_result(str(store), python=str(job_env.python))
        env1 = first.env
        http1 = f"{served.url}/envs/{env1.env_id}.json"
        # two applications in a row: the second downloads nothing
        report = _drive(job_env, tmp_path / "run1.json", spark_cluster.master_url, "node-cache",
                        cache, f"{env1.uri}={http1}", f"{env1.uri}={http1}")
        app1, app2 = report["apps"]
        for app in (app1, app2):
            assert {k: app["result"][k] for k in ("udf", "groups")} == expected(1)
            for ex in app["result"]["executors"]:
                assert ex["prefix"] == str(cache / "envs" / env1.env_id)
                assert ex["env_id"] == env1.env_id
                assert _linked_from(Path(ex["numpy"]), Path(ex["prefix"]),
                                    (cache / "layers").iterdir())
        n_layers = len(env1.manifest.layers)
        assert len(served.blob_gets(app1["start"], app1["end"])) == n_layers
        assert served.blob_gets(app2["start"], app2["end"]) == []
        assert "executors do not run env 000000000000" in report["mismatch"]

        # edit the editable package without re-shipping: the driver refuses to start
        init.write_text(original.replace("VALUE = 1", "VALUE = 5"))
        stale = subprocess.run(
            [str(job_env.python), "-c",
             "import sys, envship.spark\n"
             "envship.spark.session(sys.argv[1], sys.argv[2], mode='node-cache')",
             env1.uri, spark_cluster.master_url],
            capture_output=True, text=True, timeout=300, env=_env(),
        )
        assert stale.returncode != 0
        assert "EngineError: local code differs from env" in stale.stderr
        assert "mylib/__init__.py (changed)" in stale.stderr

        # re-ship: only the code layer is uploaded; the next job sees the new code
        second = ship_result(str(store), python=str(job_env.python))
        uploaded = {lay.digest for lay in second.publish.layers if lay.uploaded}
        env2 = second.env
        new = {lay.digest for lay in env2.manifest.layers} - {
            lay.digest for lay in env1.manifest.layers}
        assert uploaded == new and len(new) == 1  # the edited project's code blob, only it
        http2 = f"{served.url}/envs/{env2.env_id}.json"
        since = time.time()
        report = _drive(job_env, tmp_path / "run2.json", spark_cluster.master_url,
                        "node-cache", cache, f"{env2.uri}={http2}")
        (app3,) = report["apps"]
        assert {k: app3["result"][k] for k in ("udf", "groups")} == expected(5)
        assert {ex["value"] for ex in app3["result"]["executors"]} == {5}
        (edited,) = [lay for lay in env2.manifest.layers if lay.digest in new]
        assert edited.kind == "code" and any(d.startswith("mylib==") for d in edited.dists)
        assert served.blob_gets(since) == [f"/blobs/sha256/{edited.hex}.tar.gz"]
    finally:
        init.write_text(original)
        served.close()


def test_local_mode_runs_python_workers_in_the_env_view(
    job_env: JobEnv, tmp_path: Path
) -> None:
    env = ship_result(str(tmp_path / "store"), python=str(job_env.python)).env
    cache = tmp_path / "node-cache"
    report = _drive(job_env, tmp_path / "local.json", "local[2]", "archives", cache, env.uri)
    (app,) = report["apps"]
    assert {k: app["result"][k] for k in ("udf", "groups")} == expected(1)
    for ex in app["result"]["executors"]:
        assert ex["prefix"] == str(cache / "envs" / env.env_id)
        assert _linked_from(Path(ex["mylib"]), Path(ex["prefix"]), (cache / "layers").iterdir())
    assert "executors do not run env 000000000000" in report["mismatch"]


def _linked_from(module_file: Path, view: Path, layers: Iterable[Path]) -> bool:
    """*module_file* is in the env view and is a hard link of a file unpacked in *layers*."""
    if not module_file.is_relative_to(view):
        return False
    rel = module_file.relative_to(view)  # lib/python3.X/site-packages/<pkg>/__init__.py
    site_rel = Path(*rel.parts[3:])
    inode = module_file.stat().st_ino
    return any((d / "site-packages" / site_rel).exists()
               and (d / "site-packages" / site_rel).stat().st_ino == inode for d in layers)
