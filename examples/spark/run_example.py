"""Run job.py on Spark with its executors inside the env envship ships from this venv.

Ships the running venv to a store — the embedded default store, or with --s3 an S3 API server
(moto_server, started and stopped here) — starts a local Spark standalone cluster (unless
--master is given), runs job.py through `envship spark-submit`, prints the results and a
summary. Exits non-zero if anything fails; the cluster is stopped in every case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from envship.engines.spark.local_cluster import StandaloneCluster
from envship.errors import EnvshipError
from envship.shipping import ShipResult, ship_result

HERE = Path(__file__).resolve().parent
BUCKET = "envship-example"
SPARK_CONFS = {
    "spark.executor.memory": "1g",
    "spark.executor.cores": "2",
    "spark.task.maxFailures": "1",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
}


def _say(msg: str) -> None:
    print(f"== {msg}", flush=True)


def _moto(stack: ExitStack) -> dict[str, Any]:
    """Start moto_server on a free port; returns the storage options of its endpoint."""
    for key, value in (("AWS_ACCESS_KEY_ID", "example-key"),
                       ("AWS_SECRET_ACCESS_KEY", "example-secret"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(lambda: (proc.terminate(), proc.wait(10)))
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"moto_server did not start on {endpoint}") from None
            time.sleep(0.2)
    import s3fs

    options: dict[str, Any] = {"endpoint_url": endpoint}
    s3fs.S3FileSystem(**options).mkdir(BUCKET)
    return options


def _print_ship(shipped: ShipResult) -> None:
    _say(f"env {shipped.env.env_id}")
    print(f"   uri: {shipped.env.uri}")
    names = {lay.digest: " ".join(lay.dists) for lay in shipped.env.manifest.layers}
    for lay in shipped.publish.layers:
        state = "uploaded" if lay.uploaded else "already in the store"
        built = "archived now" if shipped.built.get(lay.digest) else "from the build cache"
        print(f"   {lay.kind:6} {lay.size / 1e6:8.2f} MB  {state}, {built}  "
              f"{names.get(lay.digest, '')}".rstrip())


def _submit(args: argparse.Namespace, env_uri: str, master: str,
            options: dict[str, Any] | None) -> dict[str, Any]:
    envship = str(Path(sys.executable).parent / "envship")
    cmd = [envship, "spark-submit", env_uri, "--mode", args.mode, "--master", master]
    if options:
        # pyspark's own jars have no S3A client: spark-submit hands out presigned URLs itself
        cmd += ["-s", f"endpoint_url={options['endpoint_url']}"]
    if args.mode == "node-cache" and os.environ.get("ENVSHIP_CACHE"):
        cmd += ["--cache", os.environ["ENVSHIP_CACHE"]]
    for key, value in SPARK_CONFS.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd.append(str(HERE / "job.py"))
    _say(f"envship spark-submit … --mode {args.mode} --master {master} job.py")
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-12000:])
        raise SystemExit(f"the Spark job failed (exit {proc.returncode}); output above")
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            result["seconds"] = elapsed
            return result
    raise SystemExit("the job printed no RESULT line:\n" + proc.stdout[-4000:])


def _print_result(result: dict[str, Any]) -> None:
    _say("results")
    for line, score in result["scores"].items():
        print(f"   {score:6.3f}  {line}")
    for row in result["summary"]:
        print(f"   {row['category']:8} lines={row['lines']} words={row['words']} "
              f"mean_score={row['mean_score']}")


def _summary(shipped: ShipResult, result: dict[str, Any], mode: str) -> bool:
    env_id = shipped.env.env_id
    prefixes = sorted({ex["prefix"] for ex in result["executors"]})
    inside = all(ex["env_id"] == env_id for ex in result["executors"]) and all(
        p.endswith(("/envship-view", f"/envs/{env_id}")) for p in prefixes
    )
    uploaded = [lay for lay in shipped.publish.layers if lay.uploaded]
    _say("summary")
    print(f"   env id:            {env_id}")
    total = len(shipped.publish.layers)
    sent = (f"{len(uploaded)} of {total} blobs" if uploaded
            else f"none of {total} blobs (all already in the store)")
    print(f"   layers uploaded:   {sent} ({shipped.publish.bytes_sent / 1e6:.1f} MB)")
    print(f"   mode:              {mode}")
    for prefix in prefixes:
        print(f"   executor prefix:   {prefix}")
    print(f"   executors in env:  {'yes' if inside else 'NO'} "
          f"({result['checked_processes']} python processes checked)")
    print(f"   wordstats.WEIGHT:  {result['executors'][0]['weight']}")
    print(f"   spark-submit took: {result['seconds']:.0f} s")
    return inside


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s3", action="store_true", help="ship to an S3 API (moto_server)")
    parser.add_argument("--mode", choices=("archives", "node-cache"), default="archives")
    parser.add_argument("--master", help="an existing Spark master (default: start one)")
    parser.add_argument("--worker-path", type=Path,
                        help="bin directory first on the local worker's PATH")
    parser.add_argument("--work-dir", type=Path, help="where the local cluster keeps its files")
    args = parser.parse_args()
    with ExitStack() as stack:
        options = _moto(stack) if args.s3 else None
        store = f"s3://{BUCKET}/store" if options else None
        _say(f"shipping this venv ({sys.prefix}) to {store or 'the default store'}")
        shipped = ship_result(store, storage_options=options)
        _print_ship(shipped)
        master = args.master
        if master is None:
            work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            shutil.rmtree(work, ignore_errors=True)  # the last run's logs and app dirs
            _say("starting a Spark standalone cluster on 127.0.0.1 (master + 1 worker)")
            cluster = StandaloneCluster(
                work, cores=2, memory="2g",
                path_prepend=[args.worker_path] if args.worker_path else (),
            )
            stack.callback(cluster.stop)
            master = cluster.start().master_url
            print(f"   master: {master}")
        result = _submit(args, shipped.env.uri, master, options)
        _print_result(result)
        ok = _summary(shipped, result, args.mode)
        _say("stopping")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EnvshipError as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
