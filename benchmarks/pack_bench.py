"""Pack figures: cold, warm, after a one-line code edit; sizes; reproducibility."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from . import anchors as anc
from .common import BenchError, fresh_dir, run, sha256_file, uv_bin
from .context import Ctx
from .envship_steps import PackOut, envship_pack, read_pack_dir
from .refenv import edit_code, pip_installed

__all__ = ["bench_pack"]


def _same(values: list[str]) -> bool:
    return len(set(values)) == 1 and len(values) > 1


def _envship(ctx: Ctx) -> None:
    res, env, s = ctx.results, ctx.env, ctx.scratch
    edit_code(env, 0)
    cold: list[PackOut] = []
    for i in range(max(2, ctx.runs)):  # at least two cold builds for the reproducibility check
        home = fresh_dir(s / "home")
        out = s / f"pack-cold-{i}"
        if out.exists():
            shutil.rmtree(out)
        cold.append(envship_pack(env.python, out, home))
        if i > 0:
            shutil.rmtree(out)
    res.add_time("pack cold", "envship", [p.seconds for p in cold[: ctx.runs]],
                 "fresh ENVSHIP_HOME (empty build cache)")
    first = cold[0]
    ctx.artifacts["envship-pack"] = s / "pack-cold-0"
    ctx.env_ids["pack"] = first.env_id
    for kind, size in first.sizes.items():
        res.add(f"size: {kind} layer", "envship", size, "B")
    res.add("size: total", "envship", sum(first.sizes.values()), "B")
    res.add("reproducible (2+ cold builds)", "envship", _same([p.env_id for p in cold]), "",
            f"env ids: {sorted({p.env_id[:12] for p in cold})}")

    warm = [envship_pack(env.python, fresh_dir(s / "pack-warm") / "o", s / "home")
            for _ in range(ctx.runs)]
    rebuilt = sorted({k for p in warm for k, b in p.built.items() if b})
    res.add_time("pack warm (nothing changed)", "envship", [p.seconds for p in warm],
                 f"build cache warm, new output dir; layers re-archived: {rebuilt or 'none'}")
    if any(p.env_id != first.env_id for p in warm):
        res.add("warm pack env id == cold", "envship", False, "", "ANOMALY: warm differs")

    edits: list[PackOut] = []
    for i in range(ctx.runs):
        edit_code(env, i + 1)
        edits.append(envship_pack(env.python, fresh_dir(s / "pack-edit") / "o", s / "home"))
    edit_code(env, 0)
    def not_code(p: PackOut) -> dict[str, str]:
        return {k: v for k, v in p.digests.items() if not k.startswith("code")}

    deps_kept = all(not_code(p) == not_code(first) for p in edits)
    code_new = len({tuple(sorted(p.digests.items())) for p in edits}
                   | {tuple(sorted(first.digests.items()))})
    rebuilt = sorted({k for p in edits for k, b in p.built.items() if b})
    res.add_time("pack after 1-line edit", "envship", [p.seconds for p in edits],
                 f"dependency layers unchanged: {deps_kept}; distinct envs: {code_new}; "
                 f"layers re-archived: {rebuilt}")
    shutil.rmtree(s / "pack-warm", ignore_errors=True)
    shutil.rmtree(s / "pack-edit", ignore_errors=True)


def _venv_pack(ctx: Ctx) -> None:
    res, env, a, s = ctx.results, ctx.env, ctx.anchors, ctx.scratch
    res.add("packs the editable venv", "venv-pack",
            anc.venv_pack_editable_refusal(a, env, s / "refused.tar.gz"), "",
            "so venv-pack figures use a twin venv with the project installed non-editable")
    edit_code(env, 0)
    outs = [s / f"venv-pack-{i}.tar.gz" for i in range(max(2, ctx.runs))]
    times = [anc.venv_pack(a, env, o) for o in outs]
    res.add_time("pack cold", "venv-pack", times[: ctx.runs], "no cache; compress level 4")
    res.add("pack warm (nothing changed)", "venv-pack", round(statistics.median(times), 4),
            "s", "no cache: every pack is a full pack (value = cold median)")
    res.add("size: total", "venv-pack", outs[0].stat().st_size, "B")
    res.add("reproducible (2+ cold builds)", "venv-pack", _same([sha256_file(o) for o in outs]),
            "", "file mtimes + gzip header time go into the archive")
    ctx.artifacts["venv-pack"] = outs[0]
    for o in outs[1:]:
        o.unlink()
    # After an edit a venv-pack user reinstalls the project into the venv, then packs again.
    samples = []
    for i in range(ctx.runs):
        edit_code(env, i + 1)
        out = s / "venv-pack-edit.tar.gz"
        start = time.perf_counter()
        run([uv_bin(), "pip", "install", "-q", "-p", str(env.twin / "bin" / "python"),
             "--reinstall-package", "benchlib", str(env.project)])
        anc.venv_pack(a, env, out)
        samples.append(time.perf_counter() - start)
        out.unlink()
    edit_code(env, 0)
    run([uv_bin(), "pip", "install", "-q", "-p", str(env.twin / "bin" / "python"),
         "--reinstall-package", "benchlib", str(env.project)])
    res.add_time("pack after 1-line edit", "venv-pack", samples,
                 "reinstall project non-editable (uv) + full venv-pack")


def _cluster_pack(ctx: Ctx) -> None:
    res, env, a, s = ctx.results, ctx.env, ctx.anchors, ctx.scratch
    edit_code(env, 0)
    cold, hashes = [], []
    for _ in range(max(2, ctx.slow_runs)):
        out_dir = fresh_dir(s / "cp-cold")
        r = anc.cluster_pack(a, env, out_dir / "env.pex", fresh_dir(s / "pex-root-cp"),
                             force=True)
        cold.append(r.seconds)
        hashes.append(sha256_file(r.pex))
    res.add_time("pack cold", "cluster-pack", cold,
                 "upload_env to a local path, empty PEX_ROOT: resolves + downloads wheels "
                 "from PyPI, builds the PEX")
    res.add("reproducible (2+ cold builds)", "cluster-pack", _same(hashes), "")
    pex = s / "cp-cold" / "env.pex"
    res.add("size: total", "cluster-pack", pex.stat().st_size, "B")
    warm_cache = [anc.cluster_pack(a, env, pex, s / "pex-root-cp", force=True).seconds
                  for _ in range(ctx.slow_runs)]
    res.add_time("pack cold, downloads cached", "cluster-pack", warm_cache,
                 "force_upload=True with a warm PEX_ROOT (no network)")
    warm = [anc.cluster_pack(a, env, pex, s / "pex-root-cp", force=False).seconds
            for _ in range(ctx.runs)]
    res.add_time("pack warm (nothing changed)", "cluster-pack", warm,
                 "upload_env(): `pip list` matches its metadata file, skips")
    edits, stale = [], []
    for i in range(ctx.runs):
        edit_code(env, i + 1)
        edits.append(anc.cluster_pack(a, env, pex, s / "pex-root-cp", force=False).seconds)
        stale.append(anc.pex_code_value(pex) != f"VALUE = {i + 1}")
    edit_code(env, 0)
    res.add_time("pack after 1-line edit", "cluster-pack", edits,
                 "STALE: the edit is not in the PEX (cache key = pip list, ignores editable "
                 "code)" if all(stale) else f"stale in {sum(stale)}/{len(stale)} runs")
    res.add("ships the edited code", "cluster-pack", not any(stale), "",
            "without force_upload=True")
    # rebuild the original (VALUE = 0) PEX for the node figures
    anc.cluster_pack(a, env, pex, s / "pex-root-cp", force=True)
    ctx.artifacts["cluster-pack"] = pex


def _pex(ctx: Ctx) -> None:
    res, env, a, s = ctx.results, ctx.env, ctx.anchors, ctx.scratch
    edit_code(env, 0)
    cold, hashes = [], []
    out = fresh_dir(s / "pex-cold") / "env.pex"
    for _ in range(max(2, ctx.slow_runs)):
        cold.append(anc.pex_build(a, env, out, fresh_dir(s / "pex-root-pex")))
        hashes.append(sha256_file(out))
    res.add_time("pack cold", "pex", cold,
                 "pex -r frozen-requirements <project>, empty PEX_ROOT (downloads from PyPI)")
    res.add("reproducible (2+ cold builds)", "pex", _same(hashes), "")
    res.add("size: total", "pex", out.stat().st_size, "B")
    warm = [anc.pex_build(a, env, out, s / "pex-root-pex") for _ in range(ctx.slow_runs)]
    res.add_time("pack warm (nothing changed)", "pex", warm, "warm PEX_ROOT, full rebuild")


PIP_COLD = "pack cold, pip-installed venv (pycs)"


def _pip_installed(ctx: Ctx, tools: set[str]) -> None:
    """Cold packs of the same env installed by pip, which writes a pyc for every module.

    envship takes those pycs when they are provably the sources' instead of compiling; the
    anchors archive them (venv-pack) or resolve from PyPI again whatever installed the venv
    (cluster-pack): each is measured for real on this venv, not assumed equal.
    """
    res, a, s = ctx.results, ctx.anchors, ctx.scratch
    env = pip_installed(ctx.env)
    edit_code(env, 0)
    if "envship" in tools:
        packs = []
        for i in range(max(2, ctx.runs)):
            out = s / f"pack-pip-{i}"
            if out.exists():
                shutil.rmtree(out)
            packs.append(envship_pack(env.python, out, fresh_dir(s / "home-pip")))
            shutil.rmtree(out)
        same_as_uv = packs[0].env_id == ctx.env_ids.get("pack")
        dists_same = ({k: v for k, v in packs[0].digests.items() if k.startswith("dist")}
                      == {k: v for k, v in _uv_digests(ctx).items() if k.startswith("dist")})
        res.add_time(PIP_COLD, "envship", [p.seconds for p in packs[: ctx.runs]],
                     f"fresh ENVSHIP_HOME; dist blobs identical to the uv venv's: {dists_same}; "
                     f"env id identical: {same_as_uv}; reproducible: "
                     f"{_same([p.env_id for p in packs])}")
    if "venv-pack" in tools:
        out = s / "venv-pack-pip.tar.gz"
        times = [anc.venv_pack(a, env, out) for _ in range(ctx.runs)]
        res.add_time(PIP_COLD, "venv-pack", times,
                     f"pip twin (project non-editable); archive {out.stat().st_size:,} B")
        out.unlink()
    if "cluster-pack" in tools:
        cold = [anc.cluster_pack(a, env, fresh_dir(s / "cp-pip") / "env.pex",
                                 fresh_dir(s / "pex-root-cp-pip"), force=True).seconds
                for _ in range(ctx.slow_runs)]
        res.add_time(PIP_COLD, "cluster-pack", cold,
                     "upload_env from the pip venv, empty PEX_ROOT (resolves from PyPI)")
        shutil.rmtree(s / "cp-pip", ignore_errors=True)


def _uv_digests(ctx: Ctx) -> dict[str, str]:
    art = ctx.artifacts.get("envship-pack")
    if art is None:
        return {}
    return read_pack_dir(Path(art)).digests


def bench_pack(ctx: Ctx, tools: set[str]) -> None:
    """Run the pack figures for the requested tools (envship, venv-pack, cluster-pack, pex)."""
    ctx.results.context["site_packages_bytes"] = sum(
        f.stat().st_size for f in Path(ctx.env.site_packages).rglob("*") if f.is_file()
    )
    steps = {"envship": _envship, "venv-pack": _venv_pack, "cluster-pack": _cluster_pack,
             "pex": _pex}
    for tool, fn in steps.items():
        if tool in tools:
            try:
                fn(ctx)
            except BenchError as exc:
                ctx.results.add("error", tool, str(exc).splitlines()[0][:300], "")
                print(f"[{tool}] FAILED: {exc}")
    try:
        _pip_installed(ctx, tools)
    except BenchError as exc:
        ctx.results.add("error", "pip-installed venv", str(exc).splitlines()[0][:300], "")
        print(f"[pip-installed venv] FAILED: {exc}")
