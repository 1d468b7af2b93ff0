"""A cluster-pack user's migration, measured: cluster-pack's four examples and their envship
versions (benchmarks/migration/<scenario>/with_{cluster_pack,envship}.py, written as
docs/migrating-from-cluster-pack.md says), each run as the user runs it.

    .venv/bin/python -m benchmarks.bench_migration [--only spark,interactive] [--tools envship]
    .venv/bin/python -m benchmarks --only migration

Per scenario and tool: the commands the user runs, the lines the migration changes (difflib,
cluster-pack file -> envship file), the wall time of the script's first run (a fresh store and
empty tool caches: pack + upload + job) and of a second run after a one-line edit of the
user's code, and the bytes each run uploaded (objects new or rewritten in the store, plus the
local files the YARN spec attaches, which skein uploads at every submission). Spark runs on a
standalone cluster on 127.0.0.1, S3 on moto_server; there is no YARN: no_yarn.py plays its
localizer and runs the container in a fresh directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import BenchError, Results, bench_context, finish, fresh_dir, work_dir
from .migration_kit import (
    SCENARIOS,
    TOOLS,
    Scenario,
    apply_edit,
    diff_counts,
    envship_wheel,
    lay_out_run,
    script,
    snapshot,
    user_venv,
    written_bytes,
)
from .report import format_value

__all__ = ["bench_migration", "main"]

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the tests' moto helpers

BUCKET = "test"
DROP = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_CONF_DIR", "SPARK_HOME",
        "VIRTUAL_ENV", "ENVSHIP_CACHE", "ENVSHIP_HOME", "PYTHONPATH", "PEX_ROOT")
PHASES = (("first job", "uploaded, first run"),
          ("job after a 1-line edit", "uploaded after the edit"))
HOW = ("first job: the script's wall time from its start (pack + upload + job), fresh store "
       "and empty tool caches (envship's build cache; cluster-pack's PEX_ROOT, so pex "
       "downloads the wheels from the index again); after the edit: same store and caches")


class _Servers:
    """The Spark standalone cluster and the S3 server the scenarios need, started lazily."""

    def __init__(self, work: Path, node_python: Path) -> None:
        self.work, self.node_bin = work, node_python.parent
        self.cluster: Any = None
        self.moto: Any = None

    def spark_master(self) -> str:
        if self.cluster is None:
            from envship.engines.spark.local_cluster import StandaloneCluster

            print("migration: starting the Spark standalone cluster…", flush=True)
            self.cluster = StandaloneCluster(self.work / "cluster", cores=2, memory="4g",
                                             path_prepend=[self.node_bin]).start()
        return str(self.cluster.master_url)

    def s3(self) -> tuple[str, Any]:
        from kits.support import AWS_ENV, start_moto_server

        if self.moto is None:
            os.environ.update(AWS_ENV)
            self.moto = start_moto_server()
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True,
                               client_kwargs={"endpoint_url": self.moto.endpoint})
        return self.moto.endpoint, fs

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        if self.moto is not None:
            self.moto.stop()


def _store(scn: Scenario, root: Path, servers: _Servers) -> tuple[str, Any, dict[str, str]]:
    """The store's URL, its filesystem and the variables that point the script at it."""
    if scn.s3:
        endpoint, fs = servers.s3()
        if fs.exists(BUCKET):
            fs.rm(BUCKET, recursive=True)
        fs.mkdir(BUCKET)
        from kits.support import AWS_ENV

        return f"{BUCKET}/envs", fs, {"S3_ENDPOINT": endpoint, **AWS_ENV}
    import fsspec

    store = fresh_dir(root / "store")
    return str(store), fsspec.filesystem("file"), {"ENV_STORE": str(store)}


def _environ(venv: Path, root: Path, extra: dict[str, str]) -> dict[str, str]:
    """An activated venv, as the user runs the script, with its own tool caches."""
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               VIRTUAL_ENV=str(venv), ENVSHIP_HOME=str(root / "envship-home"),
               PEX_ROOT=str(root / "pex-root"), SPARK_LOCAL_IP="127.0.0.1", **extra)
    return env


def _attached(report: Path, store_root: str) -> int:
    """Bytes of the local files a YARN spec names outside the store (skein uploads them)."""
    import json

    if not report.exists():
        return 0
    data = json.loads(report.read_text())
    return sum(f["size"] for svc in data["services"].values() for f in svc["files"]
               if not f["source"].startswith(store_root))


def _one(scn: Scenario, tool: str, venv: Path, root: Path, servers: _Servers,
         res: Results) -> None:
    store, fs, extra = _store(scn, root, servers)
    for sub in ("envship-home", "pex-root", "logs"):
        fresh_dir(root / sub)
    if scn.spark:
        extra["SPARK_MASTER"] = servers.spark_master()
    else:
        extra["NO_YARN"] = str(root / "no_yarn.json")
        extra["NODE_PATH"] = str(servers.node_bin)
    run_dir = root / "run"
    target = lay_out_run(scn, tool, run_dir)
    env = _environ(venv, root, extra)
    for n, (time_step, bytes_step) in enumerate(PHASES):
        if n:
            path, before, after = scn.edit
            apply_edit(Path(path.format(script=target, project=venv.parent / "project")),
                       before, after)
        label = f"{scn.name}: {time_step}"
        print(f"migration: {label}, {tool}…", flush=True)
        report = Path(extra.get("NO_YARN", root / "none"))
        report.unlink(missing_ok=True)
        seen = snapshot(fs, store)
        start = time.perf_counter()
        proc = subprocess.run([str(venv / "bin" / "python"), target.name], cwd=run_dir,
                              env=env, capture_output=True, text=True, timeout=1800)
        took = time.perf_counter() - start
        out = proc.stdout + proc.stderr
        (root / "logs" / f"{n}.log").write_text(out)
        if proc.returncode != 0 or (scn.edited if n else scn.expect) not in out:
            tail = [ln for ln in out.splitlines() if ln.strip()][-3:]
            note = f"failed (exit {proc.returncode}): {' | '.join(tail)[:300]}"
            res.add(f"{scn.name}: {time_step}", tool, None, "s", note)
            print(f"migration: {note}\n  log: {root / 'logs' / f'{n}.log'}", file=sys.stderr)
            return
        uploaded, paths = written_bytes(seen, snapshot(fs, store))
        attached = _attached(report, store)
        res.add_time(label, tool, [took], f"load {os.getloadavg()[0]:.1f}")
        names = ", ".join(p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1][:16]
                          for p in paths[:6]) + (" …" if len(paths) > 6 else "")
        res.add(f"{scn.name}: {bytes_step}", tool, uploaded + attached, "B",
                f"store {uploaded} B in {len(paths)} objects ({names}) + attached to the "
                f"job {attached} B")
        print(f"migration: {label}, {tool}: {took:.1f} s, {uploaded + attached} B", flush=True)


def bench_migration(res: Results, scratch: Path, node_python: Path,
                    only: set[str] | None = None, tools: set[str] | None = None) -> None:
    """Run the scenarios (all, or those in *only*) with each tool; figures into *res*."""
    chosen = [s for s in SCENARIOS if only is None or s.name in only]
    use = [t for t in TOOLS if tools is None or t in tools]
    wheel = envship_wheel(scratch / "wheel")
    servers = _Servers(scratch, node_python)
    notes: dict[str, Any] = {"how": HOW, "steps": {}}
    res.context["migration"] = notes
    try:
        for scn in chosen:
            cp, es = (script(scn, t).read_text() for t in TOOLS)
            added, removed = diff_counts(cp, es)
            res.add(f"{scn.name}: lines changed", "envship", f"+{added} / -{removed}", "lines",
                    f"difflib: {script(scn, 'cluster-pack').name} -> {script(scn, 'envship').name}")
            notes["steps"][scn.name] = {t: list(scn.steps[t]) for t in use}
            for tool in use:
                res.add(f"{scn.name}: steps", tool, len(scn.steps[tool]), "commands",
                        "; ".join(scn.steps[tool]))
                why = (scn.not_here or {}).get(tool)
                if why:
                    for time_step, bytes_step in PHASES:
                        res.add(f"{scn.name}: {time_step}", tool, None, "s", why)
                        res.add(f"{scn.name}: {bytes_step}", tool, None, "B", why)
                    continue
                print(f"migration: {scn.name}: the user's venv with {tool}…", flush=True)
                venv = user_venv(scn, tool, wheel)
                try:
                    _one(scn, tool, venv, scratch / scn.name / tool, servers, res)
                finally:
                    if scn.project:  # the next run starts from the unedited project
                        user_venv(scn, tool, wheel)
    finally:
        servers.stop()


ROW_STEPS = ("steps", "lines changed", *(s for pair in PHASES for s in pair))


def table(res: Results) -> str:
    """One row per scenario and tool."""
    head = ["scenario", "tool", *ROW_STEPS]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for scn in SCENARIOS:
        for tool in TOOLS:
            cells = []
            for step in ROW_STEPS:
                fig = res.get(f"{scn.name}: {step}", tool)
                if fig is not None and fig.value is None:
                    cells.append("does not run here" if "does not run" in fig.note
                                 else "failed")
                else:
                    cells.append(format_value(fig) if fig is not None else "")
            if any(cells):
                lines.append(f"| {scn.name} | {tool} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_migration",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated scenarios: " +
                    ",".join(s.name for s in SCENARIOS))
    ap.add_argument("--tools", default=",".join(TOOLS))
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s} or None
    tools = {t for t in args.tools.split(",") if t}
    unknown = (only or set()) - {s.name for s in SCENARIOS} | tools - set(TOOLS)
    if unknown:
        print(f"error: unknown scenario/tool: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    from .refenv import anchors

    res = Results(context=bench_context("migration"))
    try:
        bench_migration(res, work_dir() / "migration" / "scratch", anchors().node_python,
                        only, tools)
    except BenchError as exc:
        res.add("error", "harness", str(exc).splitlines()[0][:300], "")
        print(f"FAILED: {exc}", file=sys.stderr)
    text = table(res)
    return finish("migration", res, text)


if __name__ == "__main__":
    sys.exit(main())
