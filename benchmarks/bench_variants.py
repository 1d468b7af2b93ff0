"""Store and node bytes for 10 variants of one numpy/pandas/pyarrow project in one store.

    .venv/bin/python -m benchmarks.bench_variants [--keep]

Builds (once, cached under $ENVSHIP_BENCH_DIR/variants) ten uv venvs: the base project
(numpy, pandas, pyarrow + an editable local project) and nine realistic variants of it (one
package added, one upgraded/downgraded, a dependency set pinned differently, the project's code
edited). Each is packed and shipped with the real CLI, `envship ship STORE --python VENV --json`
(one shared ENVSHIP_HOME: its build cache is what a developer's machine has), to one fresh
local store. Reported (bytes exact):
- the store's bytes (blobs/ and envs/: manifests + provenance), the sum of the distinct blobs
  (by digest) the ten manifests reference, and the sum over envs of each env's own blob bytes
  (what a tool storing one archive per env stores);
- one node (one ENVSHIP_CACHE) that runs `envship exec <http-uri> -- python -c "import pandas"`
  for the ten envs in turn, against the store served by a byte-counting HTTP server: blob bytes
  fetched per env and in total vs the distinct blobs (and vs what each env adds over the
  envs run before it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    CountingStore,
    Results,
    bench_context,
    dir_bytes,
    finish,
    fresh_dir,
    run,
    work_dir,
)
from .envship_steps import envship_bin, envship_ship
from .refenv import _ensure, _make_venv, _write_project, edit_code_at

__all__ = ["VARIANTS", "Variant", "main"]

NAME = "bench_variants"
# Pinned (every direct and indirect dependency of the base) so that runs on different days
# compare; all exist for CPython 3.11 manylinux x86_64 on PyPI.
BASE: dict[str, str] = {
    "numpy": "2.4.6", "pandas": "3.1.1", "pyarrow": "26.0.1",
    "python-dateutil": "4.0.0", "tzdata": "2026.6",
}


@dataclass(frozen=True)
class Variant:
    name: str
    change: str  # what differs from the base, in words
    pins: dict[str, str]
    edited: bool = False  # the editable project's code differs from the base's

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(f"{k}=={v}" for k, v in sorted(self.pins.items()))


def _v(name: str, change: str, edited: bool = False, **pins: str) -> Variant:
    merged = dict(BASE)
    merged.update({k.replace("_", "-"): v for k, v in pins.items()})
    return Variant(name, change, merged, edited)


VARIANTS: tuple[Variant, ...] = (
    _v("base", "numpy 2.4.6, pandas 3.1.1, pyarrow 26.0.1 + editable project"),
    _v("+requests", "adds requests 2.34.2 (+ certifi, charset-normalizer, idna, urllib3)",
       requests="2.34.2"),
    _v("+attrs", "adds attrs 26.1.0", attrs="26.1.0"),
    _v("pandas-3.0", "pandas 3.1.1 -> 3.0.6", pandas="3.0.6"),
    _v("numpy-2.4.5", "numpy 2.4.6 -> 2.4.5", numpy="2.4.5"),
    _v("pyarrow-25", "pyarrow 26.0.1 -> 25.0.1", pyarrow="25.0.1"),
    _v("+scikit-learn", "adds scikit-learn 1.9.1 (+ scipy, joblib, threadpoolctl, ...)",
       scikit_learn="1.9.1"),
    _v("+matplotlib", "adds matplotlib 3.11.2 (+ pillow, fonttools, contourpy, ...)",
       matplotlib="3.11.2"),
    _v("edited-code", "the editable project's code changed (one line)", edited=True),
    _v("dateutil-tzdata", "python-dateutil 4.0.0 -> 2.9.0.post0, tzdata 2026.6 -> 2025.2",
       python_dateutil="2.9.0.post0", tzdata="2025.2"),
)


def build_venvs(root: Path) -> dict[str, Path]:
    """One cached uv venv per variant (uv's cache makes each install cheap)."""
    projects = {}
    for edited in (False, True):
        project = root / ("project-edited" if edited else "project") / "benchlib"
        if not (project / "pyproject.toml").exists():
            _write_project(project)
        edit_code_at(project, 1 if edited else 0)
        projects[edited] = project
    venvs = {}
    for i, var in enumerate(VARIANTS):
        venv = root / "venvs" / f"{i:02d}"
        project = projects[var.edited]
        _ensure(venv, [var.requirements, str(project)],
                lambda v=venv, r=var.requirements, p=project: _make_venv(v, r, ["-e", str(p)]))
        venvs[var.name] = venv
    return venvs


def inode_bytes(root: Path) -> int:
    """Bytes on disk under *root*, each inode once (a view hard-links the unpacked blobs)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _human(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}", description=__doc__)
    p.add_argument("--keep", action="store_true", help="keep the store and the node cache")
    args = p.parse_args(argv)
    results = Results(context=bench_context(NAME))
    root = work_dir() / "variants"
    print("building the variant venvs (cached)…", flush=True)
    venvs = build_venvs(root)
    home, store = root / "home", fresh_dir(root / "store")
    node_python = os.path.realpath(sys.executable)  # the base interpreter every venv uses
    envs: list[dict[str, Any]] = []
    for var in VARIANTS:
        print(f"ship {var.name}…", flush=True)
        seconds, info = envship_ship(venvs[var.name] / "bin" / "python", store, home)
        manifest = json.loads((store / "envs" / f"{info['env_id']}.json").read_text())
        layers = {x["digest"]: int(x["size"]) for x in manifest["layers"]}
        envs.append({"variant": var.name, "change": var.change, "env_id": info["env_id"],
                     "package_change": not var.edited,
                     "layers": len(layers), "env_blob_bytes": sum(layers.values()),
                     "bytes_sent": int(info["bytes_sent"]), "ship_s": round(seconds, 3),
                     "_layers": layers})
        results.add_time(f"ship {var.name}", "envship", [seconds])
    distinct: dict[str, int] = {}
    for e in envs:
        distinct.update(e["_layers"])
    blob_files = list((store / "blobs").rglob("*.tar.gz"))
    store_bytes = dir_bytes(store)
    blobs_bytes, envs_bytes = dir_bytes(store / "blobs"), dir_bytes(store / "envs")
    distinct_bytes = sum(distinct.values())
    per_env_sum = sum(e["env_blob_bytes"] for e in envs)
    base_env = envs[0]["env_blob_bytes"]
    r = results.add
    r("store: total bytes", "envship", store_bytes, "B", "blobs/ + envs/ (+ anything else)")
    r("store: blobs/ bytes", "envship", blobs_bytes, "B", f"{len(blob_files)} blob files")
    r("store: envs/ bytes", "envship", envs_bytes, "B", "manifests + provenance")
    r("distinct blobs: bytes", "envship", distinct_bytes, "B", f"{len(distinct)} digests")
    r("store / distinct blobs", "envship", round(store_bytes / distinct_bytes, 4), "x",
      "target <= 1.1")
    r("blobs/ / distinct blobs", "envship", round(blobs_bytes / distinct_bytes, 6), "x")
    r("sum of bytes sent by the 10 ships", "envship",
      sum(e["bytes_sent"] for e in envs), "B")
    r("sum over envs of each env's blobs", "whole-env archive", per_env_sum, "B",
      "what one archive per env stores")
    r("sum over envs / distinct blobs", "whole-env archive",
      round(per_env_sum / distinct_bytes, 3), "x")
    r("sum over envs / base env", "whole-env archive", round(per_env_sum / base_env, 3), "x")

    # The node: one cache, the ten envs in turn, blobs over HTTP from a byte-counting server.
    cache = fresh_dir(root / "node-cache")
    seen: set[str] = set()
    with CountingStore(store) as server:
        for e in envs:
            before = server.snapshot()
            new = {d: s for d, s in e["_layers"].items() if d not in seen}
            seen |= set(new)
            uri = f"{server.url}/envs/{e['env_id']}.json"
            start = time.perf_counter()
            run([envship_bin(), "exec", uri, "--", "python", "-c", "import pandas"],
                env={"ENVSHIP_CACHE": str(cache), "ENVSHIP_PYTHON": node_python})
            e["exec_s"] = round(time.perf_counter() - start, 3)
            after = server.snapshot()
            e["node_fetched_blob_bytes"] = after.get("blobs", 0) - before.get("blobs", 0)
            e["node_fetched_blobs"] = (after.get("blobs_requests", 0)
                                       - before.get("blobs_requests", 0))
            e["node_new_blob_bytes"] = sum(new.values())
            e["node_new_blobs"] = len(new)
            results.add_time(f"node exec {e['variant']}", "envship", [e["exec_s"]],
                             f"{e['node_new_blobs']} new blob(s)")
        total = server.snapshot()
    fetched = total.get("blobs", 0)
    r("node: blob bytes fetched (10 envs)", "envship", fetched, "B",
      f"{total.get('blobs_requests', 0)} blob GETs")
    r("node: other bytes fetched", "envship", total.get("other", 0), "B",
      f"{total.get('other_requests', 0)} GETs (manifests)")
    r("node: fetched / distinct blobs", "envship", round(fetched / distinct_bytes, 6), "x",
      "target 1")
    r("node: fetched / sum over envs", "envship", round(fetched / per_env_sum, 4), "x",
      "a whole-env-per-archive node cache fetches the sum over envs")
    r("node cache bytes on disk", "envship", inode_bytes(cache), "B",
      "unpacked blobs + views, each hard-linked file once")
    results.context.update(
        variants=[{k: v for k, v in e.items() if not k.startswith("_")} for e in envs],
        base_pins=BASE, store=str(store))
    if not args.keep:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)

    lines = [f"## {NAME} ({results.context['started']}, load average "
             f"{os.getloadavg()[0]:.1f} at the end)", "",
             "| # | variant | change | layers | env blobs | sent by ship | node fetched "
             "| new vs envs before | ship | exec |", "|---|---|---|---|---|---|---|---|---|---|"]
    for i, e in enumerate(envs):
        lines.append(f"| {i} | {e['variant']} | {e['change']} | {e['layers']} | "
                     f"{e['env_blob_bytes']:,} B | {e['bytes_sent']:,} B | "
                     f"{e['node_fetched_blob_bytes']:,} B ({e['node_fetched_blobs']} GETs) | "
                     f"{e['node_new_blob_bytes']:,} B ({e['node_new_blobs']}) | "
                     f"{e['ship_s']:.2f} s | {e['exec_s']:.2f} s |")
    lines += ["", "| figure | value |", "|---|---|"]
    for fig in results.figures:
        if fig.unit == "s":
            continue
        value = (f"{fig.value:,} B ({_human(fig.value)})"
                 if fig.unit == "B" and isinstance(fig.value, int) else f"{fig.value} {fig.unit}")
        lines.append(f"| {fig.step} ({fig.tool}) | {value} |")
    results.context["loadavg_end"] = os.getloadavg()
    lines.append(f"\nload average: start {results.context['loadavg_start']}, "
                 f"end {results.context['loadavg_end']}")
    return finish(NAME, results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
