"""Spark archives mode, time to first task: one archive per distribution blob (schema 2, merged
view at executor start) against one grouped archive of the same files (schema-1 layout).

    .venv/bin/python benchmarks/bench_spark_blobs.py [--packages numpy,pandas] [--runs 2]

Builds a venv with uv; splits its site-packages by RECORD into one compiled blob per
distribution, and also packs the same files (pycs included) as one blob; publishes both envs
to a local store; starts one standalone cluster (2 cores) whose workers' python3 has no numpy;
runs the same application (2 tasks importing numpy and pandas) with the confs of
`envship.spark.conf(env, "archives")` for each layout, interleaved, and prints seconds from
launch to the first finished task. Envs are written by hand (the packer does not write
schema 2 yet), so the manifests here are only what archives mode reads: layers and kinds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_view import BIN, MM, PY, _blob, split  # noqa: E402

JOB = textwrap.dedent(
    """\
    import json, sys, time
    from pyspark.sql import SparkSession

    def task(_):
        import numpy, pandas
        return [(time.time(), sys.executable, numpy.__version__)]

    spark = SparkSession.builder.appName("bench-blobs").getOrCreate()
    rows = spark.sparkContext.parallelize(range(2), 2).mapPartitions(task).collect()
    print("RESULT " + json.dumps({"first": min(rows)[0], "python": min(rows)[1]}), flush=True)
    spark.stop()
    """
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--packages", default="numpy,pandas")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--only", choices=("per-blob", "grouped"), help="run one layout only")
    p.add_argument("--keep", action="store_true", help="keep the work dir (executor logs)")
    args = p.parse_args()
    from envship.engines.spark.conf import conf
    from envship.engines.spark.local_cluster import StandaloneCluster, find_spark_home
    from envship.env import Env
    from envship.packing.manifest import LayerRef, Manifest, PythonInfo
    from envship.store import open_store

    base = Path(os.environ.get("ENVSHIP_BENCH_DIR") or "~/.cache/envship-bench").expanduser()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="spark-blobs-", dir=base))
    cluster = None
    try:
        venv = work / "venv"
        subprocess.run([str(BIN / "uv"), "venv", "-q", "-p", PY, str(venv)], check=True)
        subprocess.run([str(BIN / "uv"), "pip", "install", "-q", "-p", str(venv / "bin/python"),
                        *args.packages.split(",")], check=True)
        layers = split(venv / "lib" / f"python{MM}" / "site-packages", work / "split")
        grouped = work / "grouped"
        for d in sorted((work / "split").iterdir()):
            shutil.copytree(d, grouped, dirs_exist_ok=True)
        grouped_blob = _blob(grouped)
        v = sys.version_info
        py = PythonInfo("cpython", f"{v[0]}.{v[1]}.{v[2]}", f"cp{v[0]}{v[1]}", "linux_x86_64")
        store = open_store(str(work / "store"))
        blob_dir = work / "blobs"
        blob_dir.mkdir()

        def env_of(kind: str, datas: list[bytes]) -> Env:
            import hashlib

            refs, paths = [], {}
            for data in datas:
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                path = blob_dir / f"{digest[7:]}.tar.gz"
                path.write_bytes(data)
                refs.append(LayerRef(kind, digest, len(data), 0))
                paths[digest] = path
            manifest = Manifest(py, tuple(refs))
            result = store.publish(manifest, paths)
            return Env(result.env_uri, manifest, store.url, {})

        envs = {
            "per-blob": env_of("dist", [lay["_data"] for lay in layers]),  # type: ignore[misc]
            "grouped": env_of("deps", [grouped_blob]),
        }
        if args.only:
            envs = {args.only: envs[args.only]}
        print(f"{len(layers)} blobs ({sum(int(lay['size']) for lay in layers) / 1e6:.1f} MB) "  # type: ignore[call-overload]
              f"vs one grouped blob ({len(grouped_blob) / 1e6:.1f} MB)", flush=True)
        bare = work / "bare"
        subprocess.run([str(BIN / "uv"), "venv", "-q", "-p", PY, str(bare)], check=True)
        cluster = StandaloneCluster(work / "cluster", cores=2, memory="2g",
                                    path_prepend=[bare / "bin"])
        cluster.start()
        job = work / "job.py"
        job.write_text(JOB)
        submit = str(find_spark_home() / "bin" / "spark-submit")
        times: dict[str, list[float]] = {k: [] for k in envs}
        # An unmeasured first round: the first application after the cluster starts pays for
        # cold JVM classes and page cache (~8 s more here), whatever its layout.
        for round_ in range(args.runs + 1):
            for label, env in envs.items():
                confs = conf(env, "archives", master=cluster.master_url, boot_dir=work / "boot")
                cmd = [submit, "--master", cluster.master_url, "--conf",
                       "spark.executor.memory=1g", "--conf", "spark.ui.enabled=false",
                       "--conf", f"spark.pyspark.driver.python={sys.executable}"]
                for k, val in confs.items():
                    cmd += ["--conf", f"{k}={val}"]
                cmd.append(str(job))
                full = {k: x for k, x in os.environ.items()
                        if k not in ("PYSPARK_PYTHON", "VIRTUAL_ENV", "SPARK_CONF_DIR")}
                full.update(PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
                launch = time.time()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=work)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), "")
                if not line:
                    raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
                if args.keep:
                    (work / f"driver-{label}-{round_}.log").write_text(proc.stderr)
                info = json.loads(line[len("RESULT "):])
                took = info["first"] - launch
                if round_:
                    times[label].append(took)
                print(f"{label}: first task {took:.1f} s{'' if round_ else ' (warm-up)'} "
                      f"({info['python']})", flush=True)
        for label, values in times.items():
            print(f"{label}: median {statistics.median(values):.1f} s over {len(values)} runs")
    finally:
        if cluster is not None:
            cluster.stop()
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
