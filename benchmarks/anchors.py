"""Runners for the anchor tools: venv-pack, cluster-pack (PEX via `upload_env`) and plain pex."""

from __future__ import annotations

import os
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .common import BenchError, run
from .refenv import PROJECT, Anchors, RefEnv

__all__ = [
    "ClusterPackRun",
    "cluster_pack",
    "pex_build",
    "pex_code_value",
    "venv_pack",
    "venv_pack_editable_refusal",
]

# Runs *inside the reference interpreter* (cluster-pack packs "the current env": it calls
# `sys.executable -m pip list -l` and imports the editable packages), with cluster-pack itself
# made importable by appending its own venv's site-packages to sys.path in this process only
# (PYTHONPATH would leak into the `pip list` subprocess, which then lists nothing).
_CLUSTER_PACK_DRIVER = textwrap.dedent(
    """\
    import json, sys, time
    out, force, anchor_site = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
    sys.path.append(anchor_site)
    import cluster_pack
    t = time.perf_counter()
    path, name = cluster_pack.upload_env(package_path=out, include_editable=True,
                                         force_upload=force)
    print(json.dumps({"seconds": time.perf_counter() - t, "path": path}))
    """
)


@dataclass(frozen=True)
class ClusterPackRun:
    seconds: float  # whole process: interpreter start, imports, pip list, pex, "upload"
    pex: Path


def venv_pack(anchors: Anchors, env: RefEnv, output: Path) -> float:
    """`venv-pack -p <twin> -o output` (the twin venv: venv-pack refuses editable installs)."""
    if output.exists():
        output.unlink()
    start = time.perf_counter()
    run([anchors.bin(anchors.venv_pack, "venv-pack"), "-q", "-p", str(env.twin), "-o",
         str(output)])
    return time.perf_counter() - start


def venv_pack_editable_refusal(anchors: Anchors, env: RefEnv, output: Path) -> str:
    """What venv-pack says when asked to pack the reference venv itself (editable install)."""
    try:
        run([anchors.bin(anchors.venv_pack, "venv-pack"), "-q", "-p", str(env.venv), "-o",
             str(output)])
    except BenchError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "editable" in ln.lower()]
        return lines[0] if lines else str(exc).splitlines()[0]
    finally:
        if output.exists():
            output.unlink()
    return "accepted"


def _cluster_pack_env(anchors: Anchors, env: RefEnv, pex_root: Path) -> dict[str, str]:
    return {
        "PATH": f"{anchors.cluster_pack / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(env.venv),
        "PEX_ROOT": str(pex_root),
        "C_PACK_USER": "bench",
    }


def cluster_pack(
    anchors: Anchors, env: RefEnv, output: Path, pex_root: Path, *, force: bool
) -> ClusterPackRun:
    """`cluster_pack.upload_env(package_path=output)` run by the reference interpreter.

    `force=False` is the tool's normal call: it skips packing when its metadata file says the
    `pip list` requirements did not change (it does not look at editable code).
    """
    driver = output.parent / "cluster_pack_driver.py"
    driver.write_text(_CLUSTER_PACK_DRIVER)
    start = time.perf_counter()
    site = next((anchors.cluster_pack / "lib").glob("python3*/site-packages"))
    run([str(env.python), str(driver), str(output), "1" if force else "0", str(site)],
        env=_cluster_pack_env(anchors, env, pex_root), cwd=env.project)
    return ClusterPackRun(time.perf_counter() - start, output)


def pex_build(anchors: Anchors, env: RefEnv, output: Path, pex_root: Path) -> float:
    """`pex -r <frozen requirements> <project> -o output`: what a pex user would run."""
    reqs = output.parent / "requirements.txt"
    reqs.write_text("\n".join(env.frozen_requirements()) + "\n")
    if output.exists():
        output.unlink()
    start = time.perf_counter()
    run([anchors.bin(anchors.pex, "pex"), "--python", str(env.python), "-r", str(reqs),
         str(env.project), "-o", str(output)], env={"PEX_ROOT": str(pex_root)})
    return time.perf_counter() - start


def pex_code_value(pex: Path) -> str | None:
    """The `VALUE = …` line of the editable package as packed inside a PEX (None if absent)."""
    with zipfile.ZipFile(pex) as zf:
        for name in zf.namelist():
            if name.endswith(f"{PROJECT}/__init__.py"):
                for line in zf.read(name).decode().splitlines():
                    if line.startswith("VALUE"):
                        return line
    return None
