"""Spark time to first task: envship and the anchors' recipes on one local standalone cluster."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import statistics
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
    import json, os, sys, time
    from pyspark.sql import SparkSession

    def _started(pid):
        # when a process started (exec keeps it): /proc/<pid>/stat field 22, in clock ticks
        with open("/proc/%d/stat" % pid) as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            btime = next(int(x.split()[1]) for x in f if x.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")

    def task(_):
        begin = time.time()
        import numpy, pandas
        done = time.time()
        return [(done, sys.executable, numpy.__version__, pandas.__version__, begin,
                 _started(os.getppid()))]

    spark = SparkSession.builder.appName("bench-first-task").getOrCreate()
    up = time.time()
    rows = spark.sparkContext.parallelize(range(2), 2).mapPartitions(task).collect()
    first = min(rows)
    print("RESULT " + json.dumps({"first_task_done": first[0], "context_up": up,
                                  "executor_python": first[1], "numpy": first[2],
                                  "pandas": first[3], "task_begin": first[4],
                                  "daemon_start": first[5]}), flush=True)
    spark.stop()
    """
)

# Spark's default log4j2 layout with milliseconds: the phases of an application are read from
# the driver's and the executor's logs.
_LOG4J = """\
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss.SSS} %p %c{1}: %m%n%ex
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
"""


def _submit(cmd: Sequence[str], env: Mapping[str, str], cwd: Path,
            log: Path | None = None) -> dict[str, Any]:
    """Run one application; seconds from launch to its first finished task and to its exit."""
    full = dict(os.environ)
    for var in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_CONF_DIR", "VIRTUAL_ENV",
                "ENVSHIP_CACHE"):
        full.pop(var, None)
    full.update(env)
    launch = time.time()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=full, cwd=cwd)
    wall = time.time() - launch
    if log is not None:
        log.write_text(proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            info: dict[str, Any] = json.loads(line[len(RESULT):])
            info["launch"] = launch
            info["first_task"] = info["first_task_done"] - launch
            info["context"] = info["context_up"] - launch
            info["wall"] = wall
            info["rc"] = proc.returncode
            return info
    raise BenchError(f"no RESULT line (exit {proc.returncode}): {' '.join(cmd)}\n"
                     f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")


def _stamps(text: str) -> list[tuple[float, str]]:
    out = []
    for line in text.splitlines():
        m = _STAMP.match(line)
        if m:
            when = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out.append((when, line[m.end():]))
    return out


def _first(lines: list[tuple[float, str]], *needles: str, last: bool = False) -> float | None:
    hits = [t for t, text in lines if all(n in text for n in needles)]
    if not hits:
        return None
    return hits[-1] if last else hits[0]


def phases(info: Mapping[str, Any], driver_log: str, executor_log: str,
           view: Path | None = None) -> dict[str, float]:
    """Seconds per phase of one application, from launch: read from the driver's and the
    executor's logs (millisecond stamps), the task's own clock and the view's file times."""
    drv, exe = _stamps(driver_log), _stamps(executor_log)
    t0 = float(info["launch"])
    marks: dict[str, float | None] = {
        "driver JVM up": _first(drv, "Running Spark version"),
        "driver archives start": _first(drv, "Unpacking an archive"),
        "driver archives end": _first(drv, "Unpacking an archive", last=True),
        "context up": float(info["context_up"]),
        "executor granted": _first(drv, "Granted executor ID"),
        "executor JVM up": _first(exe, "Started daemon with process name"),
        "executor registered": _first(exe, "Successfully registered with driver"),
        "executor fetch start": _first(exe, "Fetching "),
        "executor unpack end": _first(exe, "Unpacking an archive", last=True),
        "executor deps done": _first(exe, "Running task") or _first(exe, "Got assigned task"),
        "python daemon start": float(info.get("daemon_start") or 0) or None,
        "task begin": float(info.get("task_begin") or 0) or None,
        "first task done": float(info["first_task_done"]),
    }
    if view is not None and (view / "envship-env-id").exists():
        # boot.py links bin/python* first and writes envship-env-id last
        links = [p.lstat().st_mtime for p in (view / "bin").glob("python*") if p.is_symlink()]
        marks["view build start"] = min(links) if links else None
        marks["view build end"] = (view / "envship-env-id").stat().st_mtime
    return {k: round(v - t0, 3) for k, v in marks.items() if v is not None}


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


def _executor_log(cluster_dir: Path, before: set[str]) -> tuple[str, Path | None]:
    """The stderr of the executor of the application that just ran, and its working dir."""
    apps = sorted(p for p in (cluster_dir / "worker").glob("app-*") if p.name not in before)
    if not apps:
        return "", None
    execs = sorted(apps[-1].iterdir())
    if not execs:
        return "", None
    err = execs[0] / "stderr"
    return (err.read_text(errors="replace") if err.exists() else ""), execs[0]


def _anchor_file(ctx: Ctx, work: Path) -> Path:
    """The venv-pack archive of the twin: from this run's pack section, else kept outside the
    scratch dir, else built now."""
    vp_tar = ctx.artifacts.get("venv-pack")
    if vp_tar is not None and vp_tar.exists():
        return vp_tar
    kept = ctx.env.root / "spark-anchors" / "venv-pack.tar.gz"
    if not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        print("spark: building the venv-pack archive…", flush=True)
        anc.venv_pack(ctx.anchors, ctx.env, work / "venv-pack.tar.gz")
        shutil.move(str(work / "venv-pack.tar.gz"), kept)
    return kept


FLOOR = "no env (floor)"
BASELINE = "archives (baseline CLI)"


def bench_spark(ctx: Ctx) -> None:
    """One shared cluster (2 cores, 2 GB); every recipe once per round, ``ctx.runs`` rounds
    interleaved (after one unmeasured warm-up application); medians."""
    from envship.engines.spark.local_cluster import StandaloneCluster, find_spark_home

    env = ctx.env
    work = fresh_dir(ctx.scratch / "spark")
    job = work / "first_task.py"
    job.write_text(_JOB)
    log4j = work / "log4j2.properties"
    log4j.write_text(_LOG4J)
    logs = work / "logs"
    logs.mkdir()
    driver = sys.executable  # the dev venv: it has pyspark; the reference venv does not
    spark_submit = str(find_spark_home() / "bin" / "spark-submit")
    home = ctx.scratch / "home"
    home.mkdir(exist_ok=True)
    print("spark: shipping the reference env…", flush=True)
    _, shipped = envship_ship(env.python, work / "store", home)
    env_uri = str(work / "store" / "envs" / f"{shipped['env_id']}.json")
    vp_tar = _anchor_file(ctx, work)
    pex, pex_note = _pex(ctx, work)
    bare_bin = ctx.base_python.parent  # empty venv: the worker's python3 has no numpy
    probe = run([str(bare_bin / "python3"), "-c",
                 "import importlib.util as u; print(u.find_spec('numpy'))"])
    if probe.stdout.strip() != "None":
        raise BenchError(f"{bare_bin}/python3 can import numpy: not a bare worker python")
    cluster = StandaloneCluster(work / "cluster", cores=2, memory="2g", path_prepend=[bare_bin])
    print("spark: starting the standalone cluster…", flush=True)
    cluster.start()
    java_opts = f"-Dlog4j2.configurationFile=file:{log4j}"
    common = ["--master", cluster.master_url, "--conf", "spark.executor.memory=1g",
              "--conf", "spark.ui.enabled=false",
              "--conf", f"spark.driver.extraJavaOptions={java_opts}",
              "--conf", f"spark.executor.extraJavaOptions={java_opts}"]
    drv_env = {"PYSPARK_DRIVER_PYTHON": driver, "SPARK_LOCAL_IP": "127.0.0.1",
               "ENVSHIP_HOME": str(home)}
    es = [envship_bin(), "spark-submit", env_uri, "--no-check", "--no-local-modules"]
    cache = work / "node-cache"
    recipes: dict[str, list[str]] = {
        FLOOR: [spark_submit, *common, "--conf", f"spark.pyspark.python={env.python}",
                "--conf", f"spark.pyspark.driver.python={driver}", str(job)],
        "archives": [*es, "--mode", "archives", *common, str(job)],
        "venv-pack": [
            spark_submit, *common, "--conf", f"spark.archives={vp_tar}#environment",
            "--conf", "spark.pyspark.python=./environment/bin/python",
            "--conf", f"spark.pyspark.driver.python={driver}", str(job)],
        "node-cache cold": [*es, "--mode", "node-cache", "--cache", str(cache), *common,
                            str(job)],
        "node-cache warm": [*es, "--mode", "node-cache", "--cache", str(cache), *common,
                            str(job)],
    }
    baseline = os.environ.get("ENVSHIP_BENCH_SPARK_BASELINE")
    if baseline:  # another envship CLI (e.g. an older checkout's): its archives mode, same run
        cmd = [baseline, *es[1:], "--mode", "archives", *common, str(job)]
        recipes = {k: v for label, c in recipes.items()
                   for k, v in ((label, c), (BASELINE, cmd))[: 2 if label == "archives" else 1]}
    if pex is not None:
        recipes["cluster-pack"] = [
            spark_submit, *common, "--conf", f"spark.files={pex}",
            "--conf", f"spark.pyspark.python=./{pex.name}",
            "--conf", "spark.executorEnv.PEX_ROOT=./.pex",
            "--conf", "spark.executorEnv.PEX_INHERIT_PATH=fallback",
            "--conf", f"spark.pyspark.driver.python={driver}", str(job)]
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in recipes}
    errors: dict[str, str] = {}
    loads: list[tuple[float, float, float]] = [os.getloadavg()]
    try:
        # The first application after the cluster starts pays for cold JVM classes and page
        # cache whatever its recipe: one unmeasured run of the floor first.
        print("spark: warm-up application…", flush=True)
        try:
            _submit(recipes[FLOOR], drv_env, work, logs / "warm-up.log")
        except BenchError as exc:
            print(f"spark: warm-up failed: {exc}", file=sys.stderr)
        for round_ in range(ctx.runs):
            for label, cmd in recipes.items():
                if label in errors:
                    continue
                if label == "node-cache cold":
                    shutil.rmtree(cache, ignore_errors=True)
                before = {p.name for p in (cluster.work_dir / "worker").glob("app-*")}
                log = logs / f"{label.replace(' ', '-')}-{round_}.log"
                try:
                    info = _submit(cmd, drv_env, work, log)
                except BenchError as exc:
                    errors[label] = str(exc).splitlines()[0][:300]
                    print(f"spark: {label} failed: {exc}", file=sys.stderr)
                    continue
                exe_log, exe_dir = _executor_log(cluster.work_dir, before)
                view = exe_dir / "envship-view" if exe_dir is not None else None
                info["phases"] = phases(info, log.read_text(), exe_log, view)
                info["loadavg"] = os.getloadavg()
                out[label].append(info)
                print(f"spark: round {round_ + 1}/{ctx.runs} {label}: first task "
                      f"{info['first_task']:.1f} s (load {info['loadavg'][0]:.1f})", flush=True)
            loads.append(os.getloadavg())
    finally:
        cluster.stop()
    _record(ctx, out, errors, pex_note, loads)
    shutil.rmtree(cache, ignore_errors=True)


def _median(infos: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(i[key]) for i in infos)


def _record(ctx: Ctx, out: dict[str, list[dict[str, Any]]], errors: dict[str, str],
            pex_note: str, loads: list[tuple[float, float, float]]) -> None:
    res = ctx.results
    res.context["spark"] = {
        "loadavg_per_round": [list(x) for x in loads],
        "runs": {k: [{x: v[x] for x in v if x not in ("first_task_done",)} for v in infos]
                 for k, infos in out.items()},
        "errors": errors,
    }
    rows = (("archives", "per-app archives"), ("node-cache cold", "node-cache cold"),
            ("node-cache warm", "node-cache warm"))
    anchor_notes = {
        "venv-pack": "venv-pack tar.gz of the non-editable twin in spark.archives#environment, "
                     "spark.pyspark.python=./environment/bin/python; its bin/python links to "
                     "the base interpreter's absolute path, present on this one machine "
                     "(elsewhere: --python-prefix or the same base python on every node)",
        "cluster-pack": pex_note + "; spark.files, PEX_ROOT=./.pex, PEX_INHERIT_PATH=fallback",
    }
    floor = out.get(FLOOR) or []
    for label, suffix in rows:
        step = f"{STEP}: {suffix}"
        infos = out.get(label) or []
        if infos:
            res.add_time(step, "envship", [i["first_task"] for i in infos],
                         _where(infos[0], f"--mode {label.split()[0]}") +
                         f"; app wall {_median(infos, 'wall'):.1f} s (median)")
        else:
            res.add(step, "envship", None, "s", f"failed: {errors.get(label, 'not run')}")
        if floor:
            res.add_time(step, FLOOR, [i["first_task"] for i in floor],
                         f"spark.pyspark.python=<reference venv>/bin/python: the env is "
                         f"already on the node, nothing delivered; executor python "
                         f"{floor[0].get('executor_python')}" if label == "archives"
                         else "same application as the archives row")
        for tool in ("venv-pack", "cluster-pack"):
            a = out.get(tool)
            if a is None:
                res.add(step, tool, None, "s", "not measured: " + pex_note)
            elif not a:
                res.add(step, tool, None, "s", f"failed: {errors.get(tool, 'not run')}")
            elif label == "archives":
                res.add_time(step, tool, [i["first_task"] for i in a],
                             _where(a[0], anchor_notes[tool]) +
                             f"; app wall {_median(a, 'wall'):.1f} s (median)")
            else:
                res.add_time(step, tool, [i["first_task"] for i in a],
                             "same application as the archives row (no node cache)")
    medians = {k: _median(v, "first_task") for k, v in out.items() if v}
    anchors = [medians[t] for t in ("venv-pack", "cluster-pack") if t in medians]
    if "archives" in medians and anchors:
        res.add(f"{STEP}: archives / faster anchor", "envship",
                round(medians["archives"] / min(anchors), 3), "x", "goal <= 0.9")
    if "node-cache warm" in medians and FLOOR in medians:
        res.add(f"{STEP}: node-cache warm / no-env floor", "envship",
                round(medians["node-cache warm"] / medians[FLOOR], 3), "x", "goal <= 1.15")
    if BASELINE in medians:
        step = f"{STEP}: archives, baseline CLI ($ENVSHIP_BENCH_SPARK_BASELINE)"
        res.add_time(step, "envship", [i["first_task"] for i in out[BASELINE]],
                     os.environ.get("ENVSHIP_BENCH_SPARK_BASELINE", ""))
        if "archives" in medians:
            res.add(f"{STEP}: archives / baseline CLI archives", "envship",
                    round(medians["archives"] / medians[BASELINE], 3), "x", "")
    if "archives" in medians and FLOOR in medians:
        res.add(f"{STEP}: archives / no-env floor", "envship",
                round(medians["archives"] / medians[FLOOR], 3), "x", "")
    all_phases: dict[str, dict[str, float]] = {}
    res.context["spark_phases"] = all_phases
    for label, infos in out.items():
        if not infos:
            continue
        keys = sorted({k for i in infos for k in i["phases"]},
                      key=lambda k: statistics.median(i["phases"].get(k, 0) for i in infos))
        phase = {k: round(statistics.median(i["phases"][k] for i in infos
                                            if k in i["phases"]), 2) for k in keys}
        all_phases[label] = phase
        print(f"spark phases (median s from launch) {label}: " +
              ", ".join(f"{k} {v:.1f}" for k, v in phase.items()), flush=True)
