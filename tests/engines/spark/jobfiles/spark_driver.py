"""Test driver: one envship.spark.session() per env given, in this one process.

usage: spark_driver.py OUT.json MASTER MODE CACHE_DIR ENV_URI[=EXECUTOR_URI] ...
Writes {"apps": [{"start", "ready", "end", "result"...}], "mismatch": "..."} to OUT.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from spark_job import workload

import envship.spark
from envship.env import Env
from envship.errors import EngineError

CONFS = {
    "spark.executor.memory": "1g",
    "spark.executor.cores": "2",
    "spark.task.maxFailures": "1",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
}


def main() -> None:
    out, master, mode, cache_dir, *envs = sys.argv[1:]
    here = Path(__file__).resolve().parent
    report: dict[str, object] = {"apps": []}
    for spec in envs:
        uri, _, executor_uri = spec.partition("=")
        env = Env.open(uri)
        if executor_uri:  # the same store, reached by executors through another URL
            env = Env(executor_uri, env.manifest, env.store_url)
        start = time.time()
        spark = envship.spark.session(
            env, master, mode=mode, cache_dir=cache_dir, app_name="envship-test",
            py_files=envship.spark.local_modules(__file__),
            search_path=[str(here)], **CONFS,
        )
        ready = time.time()
        try:
            result = workload(spark)
            try:
                envship.spark.check(spark, "0" * 64)
            except EngineError as exc:
                report["mismatch"] = str(exc)
        finally:
            spark.stop()
        report["apps"].append(  # type: ignore[attr-defined]
            {"env_id": env.env_id, "start": start, "ready": ready, "end": time.time(),
             "result": result}
        )
    Path(out).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
