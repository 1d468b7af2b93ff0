"""Spark time to first task: envship and the anchors' recipes on one local standalone cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import anchors as anc
from .common import BenchError, fresh_dir, run
from .context import Ctx
from .envship_steps import envship_bin, envship_ship

__all__ = ["bench_spark"]

STEP = "spark first task"
RESULT = "RESULT "

# The application: one tiny RDD map (2 partitions) whose tasks import numpy and pandas and
# return when they finished; the driver prints the earliest one.
_JOB = textwrap.dedent(
    """\
    import json, sys, time
    from pyspark.sql import SparkSession

    def task(_):
        import numpy, pandas
        return [(time.time(), sys.executable, numpy.__version__, pandas.__version__)]

    spark = SparkSession.builder.appName("bench-first-task").getOrCreate()
    up = time.time()
    rows = spark.sparkContext.parallelize(range(2), 2).mapPartitions(task).collect()
    first = min(rows)
    print("RESULT " + json.dumps({"first_task_done": first[0], "context_up": up,
                                  "executor_python": first[1], "numpy": first[2],
                                  "pandas": first[3]}), flush=True)
    spark.stop()
    """
)


def _submit(cmd: Sequence[str], env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """Run one application; seconds from launch to its first finished task and to its exit."""
    full = dict(os.environ)
    for var in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_CONF_DIR", "VIRTUAL_ENV",
                "ENVSHIP_CACHE"):
        full.pop(var, None)
    full.update(env)
    launch = time.time()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=full, cwd=cwd)
    wall = time.time() - launch
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            info: dict[str, Any] = json.loads(line[len(RESULT):])
            info["first_task"] = info["first_task_done"] - launch
            info["context"] = info["context_up"] - launch
            info["wall"] = wall
            info["rc"] = proc.returncode
            return info
    raise BenchError(f"no RESULT line (exit {proc.returncode}): {' '.join(cmd)}\n"
                     f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def _pex(ctx: Ctx, work: Path) -> tuple[Path | None, str]:
    """The cluster-pack PEX of the reference env: from this run's pack section, else the copy
    kept outside the scratch dir, else built now (cluster-pack `upload_env`)."""
    if "cluster-pack" in ctx.artifacts and ctx.artifacts["cluster-pack"].exists():
        return ctx.artifacts["cluster-pack"], "PEX from this run's pack section"
    kept = ctx.env.root / "spark-anchors" / "cluster-pack.pex"
    if kept.exists():
        return kept, f"PEX built earlier by cluster-pack, kept at {kept}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    try:
        anc.cluster_pack(ctx.anchors, ctx.env, kept, work / "pex-root-cp", force=True)
    except BenchError as exc:
        return None, "no PEX: cluster-pack failed: " + str(exc).splitlines()[0][:200]
    return kept, "PEX built now by cluster-pack upload_env"


def _where(info: dict[str, Any], label: str) -> str:
    return f"{label}; executor python {info.get('executor_python')}"


def bench_spark(ctx: Ctx) -> None:
    """One shared cluster (2 cores, 2 GB); one application per recipe, run once each."""
    from envship.engines.spark.local_cluster import StandaloneCluster, find_spark_home

    env = ctx.env
    work = fresh_dir(ctx.scratch / "spark")
    job = work / "first_task.py"
    job.write_text(_JOB)
    driver = sys.executable  # the dev venv: it has pyspark; the reference venv does not
    spark_submit = str(find_spark_home() / "bin" / "spark-submit")
    home = ctx.scratch / "home"
    home.mkdir(exist_ok=True)
    print("spark: shipping the reference env…", flush=True)
    _, shipped = envship_ship(env.python, work / "store", home)
    env_uri = str(work / "store" / "envs" / f"{shipped['env_id']}.json")
    vp_tar = ctx.artifacts.get("venv-pack")
    if vp_tar is None or not vp_tar.exists():
        vp_tar = work / "venv-pack.tar.gz"
        anc.venv_pack(ctx.anchors, env, vp_tar)
    pex, pex_note = _pex(ctx, work)
    bare_bin = ctx.base_python.parent  # empty venv: the worker's python3 has no numpy
    probe = run([str(bare_bin / "python3"), "-c",
                 "import importlib.util as u; print(u.find_spec('numpy'))"])
    if probe.stdout.strip() != "None":
        raise BenchError(f"{bare_bin}/python3 can import numpy: not a bare worker python")
    cluster = StandaloneCluster(work / "cluster", cores=2, memory="2g", path_prepend=[bare_bin])
    print("spark: starting the standalone cluster…", flush=True)
    cluster.start()
    common = ["--master", cluster.master_url, "--conf", "spark.executor.memory=1g",
              "--conf", "spark.ui.enabled=false"]
    drv_env = {"PYSPARK_DRIVER_PYTHON": driver, "SPARK_LOCAL_IP": "127.0.0.1",
               "ENVSHIP_HOME": str(home)}
    es = [envship_bin(), "spark-submit", env_uri, "--no-check", "--no-local-modules"]
    cache = work / "node-cache"
    runs: dict[str, list[str]] = {
        "archives": [*es, "--mode", "archives", *common, str(job)],
        "node-cache cold": [*es, "--mode", "node-cache", "--cache", str(cache), *common,
                            str(job)],
        "node-cache warm": [*es, "--mode", "node-cache", "--cache", str(cache), *common,
                            str(job)],
        "venv-pack": [
            spark_submit, *common, "--conf", f"spark.archives={vp_tar}#environment",
            "--conf", "spark.pyspark.python=./environment/bin/python",
            "--conf", f"spark.pyspark.driver.python={driver}", str(job)],
    }
    if pex is not None:
        runs["cluster-pack"] = [
            spark_submit, *common, "--conf", f"spark.files={pex}",
            "--conf", f"spark.pyspark.python=./{pex.name}",
            "--conf", "spark.executorEnv.PEX_ROOT=./.pex",
            "--conf", "spark.executorEnv.PEX_INHERIT_PATH=fallback",
            "--conf", f"spark.pyspark.driver.python={driver}", str(job)]
    out: dict[str, dict[str, Any]] = {}
    try:
        for label, cmd in runs.items():
            print(f"spark: {label}…", flush=True)
            try:
                out[label] = _submit(cmd, drv_env, work)
            except BenchError as exc:
                out[label] = {"error": str(exc).splitlines()[0][:300]}
                print(f"spark: {label} failed: {exc}", file=sys.stderr)
    finally:
        cluster.stop()
    _record(ctx, out, pex_note)
    shutil.rmtree(cache, ignore_errors=True)


def _record(ctx: Ctx, out: dict[str, dict[str, Any]], pex_note: str) -> None:
    res = ctx.results
    res.context["spark"] = {k: {x: v[x] for x in v if x not in ("first_task_done",)}
                            for k, v in out.items()}
    rows = (("archives", "per-app archives"), ("node-cache cold", "node-cache cold"),
            ("node-cache warm", "node-cache warm"))
    anchor_notes = {
        "venv-pack": "venv-pack tar.gz of the non-editable twin in spark.archives#environment, "
                     "spark.pyspark.python=./environment/bin/python; its bin/python links to "
                     "the base interpreter's absolute path, present on this one machine "
                     "(elsewhere: --python-prefix or the same base python on every node)",
        "cluster-pack": pex_note + "; spark.files, PEX_ROOT=./.pex, PEX_INHERIT_PATH=fallback",
    }
    for label, suffix in rows:
        step = f"{STEP}: {suffix}"
        info = out.get(label, {})
        if "first_task" in info:
            res.add_time(step, "envship", [info["first_task"]],
                         _where(info, f"--mode {label.split()[0]}; one run") +
                         f"; app wall {info['wall']:.1f} s")
        else:
            res.add(step, "envship", None, "s", f"failed: {info.get('error', 'not run')}")
        for tool in ("venv-pack", "cluster-pack"):
            a = out.get(tool)
            if a is None:
                res.add(step, tool, None, "s", "not measured: " + pex_note)
            elif "first_task" not in a:
                res.add(step, tool, None, "s", f"failed: {a['error']}")
            elif label == "archives":
                res.add_time(step, tool, [a["first_task"]],
                             _where(a, anchor_notes[tool]) + f"; app wall {a['wall']:.1f} s")
            else:
                res.add_time(step, tool, [a["first_task"]],
                             "same application as the archives row (no node cache)")
