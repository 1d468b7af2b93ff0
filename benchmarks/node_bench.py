"""Ship and node figures: publish to a local store, cold and warm job start-up."""

from __future__ import annotations

import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from .common import BenchError, dir_bytes, fresh_dir, run, timed
from .context import Ctx
from .envship_steps import envship_bin, envship_exec, envship_ship, node_script, read_pack_dir
from .refenv import edit_code

__all__ = ["bench_node", "bench_ship"]

PASS = ["python", "-c", "pass"]


def bench_ship(ctx: Ctx) -> None:
    """Cold ship to an empty store, warm re-ship, ship after a code edit (time, bytes sent)."""
    res, env, s = ctx.results, ctx.env, ctx.scratch
    home = s / "home"  # build cache left warm by the pack figures (if they ran)
    home.mkdir(exist_ok=True)
    edit_code(env, 0)
    store = s / "store"
    cold: list[float] = []
    info: dict[str, Any] = {}
    for _ in range(ctx.runs):
        fresh_dir(store)
        seconds, info = envship_ship(env.python, store, home)
        cold.append(seconds)
    env_id = info["env_id"]
    res.add_time("ship cold (empty store)", "envship", cold, "local dir store; build cache warm")
    res.add("ship cold: bytes sent", "envship", info["bytes_sent"], "B",
            f"blobs on disk: {dir_bytes(store / 'blobs')} B")
    ctx.env_ids["ship"] = env_id
    warm: list[float] = []
    for _ in range(ctx.runs):
        seconds, info = envship_ship(env.python, store, home)
        warm.append(seconds)
        if info["env_id"] != env_id:
            res.add("re-ship env id == first", "envship", False, "", "ANOMALY")
    res.add_time("ship warm (nothing changed)", "envship", warm)
    res.add("ship warm: bytes sent", "envship", info["bytes_sent"], "B")
    edits: list[float] = []
    sent: list[int] = []
    rebuilt: set[str] = set()
    for i in range(ctx.runs):
        edit_code(env, 100 + i)
        seconds, info = envship_ship(env.python, store, home)
        edits.append(seconds)
        sent.append(int(info["bytes_sent"]))
        rebuilt |= {str(x["kind"]) for x in info.get("layers", []) if x.get("built")}
    edit_code(env, 0)
    res.add_time("ship after 1-line edit", "envship", edits,
                 f"layers re-archived: {sorted(rebuilt)}")
    res.add("ship after edit: bytes sent", "envship", int(statistics.median(sent)), "B",
            "one new code-layer blob")
    _, info = envship_ship(env.python, store, home)
    res.add("edit reverted -> same env id", "envship", info["env_id"] == env_id, "")
    ctx.artifacts["store"] = store
    # The anchors have no content-addressed store: every change re-sends the whole archive.
    for tool in ("venv-pack", "cluster-pack", "pex"):
        size = res.get("size: total", tool)
        if size is not None:
            note = ("0 B without force_upload, but then the edit is not shipped"
                    if tool == "cluster-pack" else "whole archive")
            res.add("ship after edit: bytes sent", tool, size.value, "B", note)


def _bare(ctx: Ctx) -> list[str]:
    return [str(ctx.base_python), "-c", "pass"]


def bench_node(ctx: Ctx, tools: set[str]) -> None:
    """Node cold start (empty cache) and warm start overhead."""
    res, s = ctx.results, ctx.scratch
    store = ctx.artifacts.get("store")
    if store is None or "ship" not in ctx.env_ids:
        store = ctx.artifacts.get("envship-pack")
        env_id = ctx.env_ids.get("pack")
    else:
        env_id = ctx.env_ids["ship"]
    if store is None or env_id is None:
        raise BenchError("node figures need an envship pack or ship first (--only pack,node)")
    env_uri = str(store / "envs" / f"{env_id}.json")
    packed = read_pack_dir(store, env_id=env_id)
    script = node_script(s / "envship_node.py")
    # An installed wheel has its bytecode compiled; this checkout may not (and the machine may
    # set PYTHONDONTWRITEBYTECODE), so compile envship's modules once before timing start-up.
    import envship

    run([sys.executable, "-m", "compileall", "-q", str(Path(envship.__file__).parent)])
    cache = s / "node-cache"

    # Cold: an empty node cache (or unpack dir) each time; the clean-up is not timed. The tools
    # take turns in each round, so that load changes on a shared machine hit them alike.
    untar, vp_dir, pex_root = s / "untar", s / "vp", s / "pex-root-node"
    # one directory per blob, named by its position (labels hold spaces: "dist numpy==…")
    blobs = " && ".join(f"mkdir -p {untar}/{i} && tar xzf {shlex.quote(str(b))} -C {untar}/{i}"
                        for i, b in enumerate(packed.blobs.values()))
    cold: dict[tuple[str, str], tuple[Path, list[str], dict[str, str], str]] = {
        ("node cold start", "envship"): (
            cache, [envship_bin(), "exec", env_uri, "--", *PASS], {"ENVSHIP_CACHE": str(cache)},
            "envship exec: fetch + verify + unpack + assemble, then python -c pass"),
        ("node cold start (node-script)", "envship"): (
            cache, [str(ctx.base_python), str(script), env_uri, "--", *PASS],
            {"ENVSHIP_CACHE": str(cache)}, "python envship_node.py ENV -- python -c pass"),
        ("node cold start", "tar xzf"): (
            untar, ["bash", "-c", f"{blobs} && {ctx.base_python} -c pass"], {},
            "tar xzf of the same layer blobs + python -c pass (no verify, no view)"),
    }
    vp = ctx.artifacts.get("venv-pack")
    if vp is not None:
        cold[("node cold start", "venv-pack")] = (
            vp_dir, ["bash", "-c", f"tar xzf {vp} -C {vp_dir} && {vp_dir}/bin/python -c pass"],
            {}, "tar xzf env.tar.gz + env/bin/python -c pass")
    cp = ctx.artifacts.get("cluster-pack")
    if cp is not None:
        cold[("node cold start", "cluster-pack")] = (
            pex_root, [str(ctx.base_python), str(cp), "-c", "pass"], {"PEX_ROOT": str(pex_root)},
            "python env.pex -c pass with an empty PEX_ROOT")
    cold_samples: dict[tuple[str, str], list[float]] = {key: [] for key in cold}
    for _ in range(ctx.runs):
        for key, (scratch_dir, cmd, envvars, _note) in cold.items():
            fresh_dir(scratch_dir)
            cold_samples[key].append(timed(cmd, env=envvars))
    for (step, tool), (_d, _c, _e, note) in cold.items():
        res.add_time(step, tool, cold_samples[(step, tool)], note)

    # Warm: everything already unpacked on the node. Interleaved rounds, so that load changes
    # on a shared machine hit every tool alike.
    envship_exec(env_uri, cache, PASS)
    warm: dict[str, tuple[list[str], dict[str, str]]] = {
        "bare python": (_bare(ctx), {}),
        "envship": ([envship_bin(), "exec", env_uri, "--", *PASS], {"ENVSHIP_CACHE": str(cache)}),
        "envship node-script": ([str(ctx.base_python), str(script), env_uri, "--", *PASS],
                                {"ENVSHIP_CACHE": str(cache)}),
    }
    if vp is not None:
        warm["venv-pack"] = ([f"{s}/vp/bin/python", "-c", "pass"], {})
    if cp is not None:
        warm["cluster-pack"] = ([str(ctx.base_python), str(cp), "-c", "pass"],
                                {"PEX_ROOT": str(s / "pex-root-node")})
    samples: dict[str, list[float]] = {tool: [] for tool in warm}
    for _ in range(ctx.warm_runs):
        for tool, (cmd, envvars) in warm.items():
            samples[tool].append(timed(cmd, env=envvars))
    bare = res.add_time("node warm start", "bare python", samples.pop("bare python"),
                        "python -c pass, the node's plain interpreter (an empty venv)")
    for tool, times in samples.items():
        med = res.add_time("node warm start", tool, times)
        res.add("node warm overhead vs bare python", tool, round((med - bare) * 1000, 1), "ms")
