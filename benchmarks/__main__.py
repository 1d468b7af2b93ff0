"""`python -m benchmarks`: measure envship against its anchors and the physical floors."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path

from .common import BenchError, Results, fresh_dir, git_commit
from .context import Ctx
from .floors import measure_floors
from .node_bench import bench_node, bench_ship
from .pack_bench import bench_pack
from .refenv import ANCHOR_PACKAGES, anchors, reference_env
from .report import markdown_table

__all__ = ["main"]

SECTIONS = ("floors", "pack", "ship", "node", "spark", "migration")
DEFAULT_SECTIONS = SECTIONS[:4]  # spark and migration start clusters: asked for by name
TOOLS = ("envship", "venv-pack", "cluster-pack", "pex")
RESULTS_DIR = Path(__file__).parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="small reference env (six, attrs + editable project), fewer runs")
    p.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                   help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated tools to measure")
    p.add_argument("--runs", type=int, default=None, help="runs per timed step (default 3)")
    p.add_argument("--slow-runs", type=int, default=None,
                   help="runs of each PEX build step (default: --runs; 1 if --quick)")
    p.add_argument("--warm-runs", type=int, default=None,
                   help="runs per warm start-up figure (default 50; 20 if --quick)")
    p.add_argument("--output", type=Path, default=None, help="JSON results file")
    return p.parse_args(argv)


def _machine() -> dict[str, object]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    tools = {t.strip() for t in args.tools.split(",") if t.strip()}
    unknown = (sections - set(SECTIONS)) | (tools - set(TOOLS))
    if unknown:
        print(f"error: unknown section/tool: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    profile = "quick" if args.quick else "full"
    runs = args.runs or 3
    started = dt.datetime.now(dt.timezone.utc)
    print(f"preparing the {profile} reference env and the anchors' venvs…", flush=True)
    env, anc = reference_env(profile), anchors()
    results = Results()
    results.context.update(
        profile=profile, started=started.isoformat(timespec="seconds"), machine=_machine(),
        envship_commit=git_commit(), reference_packages=list(env.packages),
        reference_freeze=env.frozen_requirements(), anchors=dict(ANCHOR_PACKAGES),
        sections=sorted(sections), tools=sorted(tools),
        pythondontwritebytecode=os.environ.get("PYTHONDONTWRITEBYTECODE"),
    )
    ctx = Ctx(env=env, anchors=anc, scratch=fresh_dir(env.root / "scratch"), runs=runs,
              slow_runs=args.slow_runs or (1 if args.quick else runs),
              warm_runs=args.warm_runs or (20 if args.quick else 50),
              base_python=anc.node_python, results=results)
    results.context.update(runs=ctx.runs, slow_runs=ctx.slow_runs, warm_runs=ctx.warm_runs)
    try:
        if "floors" in sections:
            print("floors…", flush=True)
            measure_floors(env.site_packages, ctx.scratch, results, runs)
        if "pack" in sections:
            print("pack…", flush=True)
            bench_pack(ctx, tools)
        if "ship" in sections and "envship" in tools:
            print("ship…", flush=True)
            bench_ship(ctx)
        if "node" in sections:
            print("node…", flush=True)
            bench_node(ctx, tools)
        if "spark" in sections:
            _spark(ctx)
        if "migration" in sections:
            from .bench_migration import bench_migration

            print("migration…", flush=True)
            bench_migration(ctx.results, ctx.scratch / "migration", ctx.base_python,
                            tools=tools)
    except BenchError as exc:
        results.add("error", "harness", str(exc).splitlines()[0][:300], "")
        print(f"FAILED: {exc}", file=sys.stderr)
    finally:
        results.context["loadavg_end"] = os.getloadavg()
        results.context["seconds_total"] = round(
            (dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)
        out = args.output or RESULTS_DIR / f"{profile}-{started:%Y%m%dT%H%M%SZ}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(results.to_json() + "\n")
        tmp.replace(out)
        table = markdown_table(results)
        out.with_suffix(".md").write_text(table)
        print(table)
        print(f"results: {out}")
    return 0


def _spark(ctx: Ctx) -> None:
    """Hook for Spark time-to-first-task: `benchmarks/spark_bench.py::bench_spark(ctx)`."""
    try:
        from . import spark_bench  # type: ignore[attr-defined]
    except ImportError:
        ctx.results.add("spark time to first task", "envship", None, "s",
                        "not measured: benchmarks/spark_bench.py is absent")
        return
    spark_bench.bench_spark(ctx)


if __name__ == "__main__":
    sys.exit(main())
