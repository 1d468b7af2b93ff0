"""CLI commands: pack, inspect, diff."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import builders_opts as bo
from .app import (
    AsJson,
    app,
    console,
    err_console,
    human_size,
    note,
    packed_line,
    plural,
    short_id,
    show_progress,
    state,
)

if TYPE_CHECKING:
    from .. import Manifest, PackResult

__all__: list[str] = []

DEFAULT_OUTPUT = "envship-pack"




class _LayerProgress:
    """Library progress callback -> one rich progress bar per layer being archived."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("archiving {task.description:<6}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("files"), console=err_console.real, transient=True,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, kind: str, done: int, total: int) -> None:
        if kind not in self.tasks:
            self.tasks[kind] = self.bar.add_task(kind, total=total)
        self.bar.update(self.tasks[kind], completed=done)


def _result_dict(result: PackResult) -> dict[str, Any]:
    out = result.output
    return {
        "env_id": result.env_id,
        "env_prefix": result.env_prefix,
        "output": str(out) if out else None,
        "manifest": str(result.manifest_path) if result.manifest_path else None,
        "layers": [
            {"kind": lay.kind, "digest": lay.digest, "size": lay.size, "files": lay.files,
             "dists": list(lay.dists), "bytecode": lay.bytecode,
             "built": result.built.get(lay.digest, False), "path": str(result.blobs[lay.digest])}
            for lay in result.manifest.layers
        ],
        "excluded": [
            {"name": e.name, "version": e.version, "reason": e.reason}
            for e in result.manifest.excluded
        ],
    }


@app.command()
def pack(
    python: bo.EnvPython = None,
    with_python: bo.WithPython = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="DIR", help="Output dir (store layout).")
    ] = Path(DEFAULT_OUTPUT),
    exclude: bo.Exclude = None,
    only: bo.Only = None,
    include: bo.Include = None,
    requirements: bo.Requirements = None,
    python_version: bo.PythonVersion = None,
    platform: bo.Platform = None,
    strict: bo.Strict = False,
    code: bo.Code = None,
    fmt: bo.Format = "layers",
    as_json: AsJson = False,
) -> None:
    """Pack an environment into layer blobs + a manifest in OUTPUT (default ./envship-pack)."""
    from .. import choose_target
    from .. import pack as do_pack

    progress = _LayerProgress() if not as_json and show_progress() else None
    kwargs: dict[str, Any] = {
        "with_python": with_python, "output": output, "exclude": tuple(exclude or ()),
        "only": tuple(only or ()), "include": tuple(include or ()),
    }
    lock = bo.lock_opts(requirements, python_version, platform, strict, code)
    kwargs.update(lock)
    target = None if lock else choose_target(python)
    if target is not None:
        python = target.python
    pex = None
    if fmt != "layers":
        from .. import build_pex_for  # the lock machinery: loaded when asked for

        pex = build_pex_for(fmt, output, kwargs)
    if pex is not None:
        err_console.print(f"pex:      {pex}", highlight=False, soft_wrap=True)
        if fmt == "pex":
            print(json.dumps({"pex": str(pex)}) if as_json else pex)
            return
    if progress is not None:
        with progress.bar:
            result = do_pack(python, progress=progress, **kwargs)
    else:
        result = do_pack(python, **kwargs)
    data = _result_dict(result)
    if target is not None:
        p = result.manifest.python
        note(packed_line(result.env_prefix, p.implementation, p.version, target.reason))
    if pex is not None:
        data["pex"] = str(pex)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col, justify in (("layer", "left"), ("files", "right"), ("size", "right"),
                         ("digest", "left"), ("", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for lay in data["layers"]:
        label = " ".join([lay["kind"], *lay["dists"]])
        table.add_row(label, str(lay["files"]), human_size(lay["size"]),
                      short_id(lay["digest"][7:]), "built" if lay["built"] else "[dim]cached[/]")
    console.print(table)
    for e in data["excluded"]:
        err_console.print(f"left out {e['name']} {e['version']}: {e['reason']}",
                          style="dim", highlight=False)
    console.print(f"env id:   {result.env_id}", highlight=False, soft_wrap=True)
    console.print(f"manifest: {data['manifest']}", highlight=False, soft_wrap=True)


def _manifest_dict(manifest: Manifest, source: str) -> dict[str, Any]:
    data = manifest.to_dict()
    data["env_id"] = manifest.env_id
    data["source"] = source
    return data


@app.command()
def inspect(
    manifest: Annotated[
        str,
        typer.Argument(metavar="ENV",
                       help="Env URI or manifest file/URL, or a packed directory."),
    ],
    as_json: AsJson = False,
) -> None:
    """Show an env: python, layers, distributions, and what was left out and why."""
    from rich.table import Table

    from .. import open_manifest as load_manifest

    m, source = load_manifest(manifest)
    if as_json:
        print(json.dumps(_manifest_dict(m, source), indent=2))
        return
    p = m.python
    console.print(f"env id: {m.env_id}", highlight=False, soft_wrap=True)
    console.print(f"python: {p.implementation} {p.version} ({p.abi}, {p.platform})",
                  highlight=False)
    console.print(f"schema: {m.schema_id}", highlight=False)
    layers = Table(title="layers", box=None, pad_edge=False, title_justify="left")
    for col, justify in (("layer", "left"), ("holds", "left"), ("files", "right"),
                         ("size", "right"), ("bytecode", "left"), ("digest", "left")):
        layers.add_column(col, justify=justify)  # type: ignore[arg-type]
    for lay in m.layers:
        bytecode = {"packed": "packed", "node": "left to the node", "none": "-"}.get(
            lay.bytecode or "", "-" if lay.kind == "python" else "not compiled")
        pkg = lay.package
        holds = (f"{pkg.name} {pkg.version} {pkg.build}" + (" (noarch)" if pkg.noarch else "")
                 + (f", {len(lay.relocations)} relocated" if lay.relocations else "")
                 if pkg is not None else ", ".join(lay.dists))
        layers.add_row(lay.kind, holds, str(lay.files), human_size(lay.size),
                       bytecode, short_id(lay.digest[7:]))
    console.print(layers)
    total = sum(lay.size for lay in m.layers)
    console.print(f"{plural(len(m.layers), 'blob')}, {human_size(total)}", highlight=False)
    dists = Table(title="distributions", box=None, pad_edge=False, title_justify="left")
    for col, justify in (("name", "left"), ("version", "left"), ("source", "left"),
                         ("blob size", "right"), ("layer", "left")):
        dists.add_column(col, justify=justify)  # type: ignore[arg-type]
    for d in m.distributions:
        holder = m.layer_of(d.name)
        shown = short_id(d.layer[7:]) if d.layer.startswith("sha256:") else d.layer
        size = human_size(holder.size) if holder else "?"
        dists.add_row(d.name, d.version, d.source, size, shown)
    console.print(dists)
    if m.excluded:
        left = Table(title="left out", box=None, pad_edge=False, title_justify="left")
        for col in ("name", "version", "reason"):
            left.add_column(col)
        for e in m.excluded:
            left.add_row(e.name, e.version, e.reason)
        console.print(left)
    scripts = m.entry_points.get("console_scripts", {})
    if scripts:
        console.print(f"console scripts: {', '.join(sorted(scripts))}", highlight=False)


@app.command()
def diff(
    a: Annotated[
        str, typer.Argument(metavar="ENV_A", help="Env URI, manifest file/URL or packed dir.")
    ],
    b: Annotated[
        str, typer.Argument(metavar="ENV_B", help="Env URI, manifest file/URL or packed dir.")
    ],
    as_json: AsJson = False,
) -> None:
    """Compare two envs: what changed, and what a node holding A fetches to run B.

    Lists the distributions added, removed and changed, and the blobs that differ. Exit
    status as diff(1): 0 the envs are the same, 1 they differ, 2 trouble.
    """
    from .. import diff_manifests
    from .. import open_manifest as load_manifest

    state.error_exit_code = 2  # 1 means "they differ" here
    ma, _ = load_manifest(a)
    mb, _ = load_manifest(b)
    d = diff_manifests(ma, mb)
    if as_json:
        print(json.dumps(d.to_dict(), indent=2))
    elif d.same:
        console.print("identical envs", highlight=False)
    else:
        if d.python:
            console.print(f"python: {d.python[0]} -> {d.python[1]}", highlight=False)
        for name, version in d.added:
            console.print(f"[green]+ {name} {version}[/]", highlight=False)
        for name, version in d.removed:
            console.print(f"[red]- {name} {version}[/]", highlight=False)
        for name, va, vb in d.changed:
            console.print(f"[yellow]~ {name} {va} -> {vb}[/]", highlight=False)
        for label, change in d.layers.items():
            if change != "same":
                console.print(f"{label} layer: {change}", highlight=False)
        for field in d.other:  # in the manifest (so the env id), not in any layer
            console.print(f"{field.replace('_', ' ')}: differ (see `envship inspect`)",
                          highlight=False)
        for blob in d.blobs_only_b:
            console.print(f"  new blob {short_id(blob.digest[7:])} {human_size(blob.size):>9}  "
                          f"{blob.label}", highlight=False)
        shared = sum(1 for change in d.layers.values() if change == "same")
        exact = f" ({d.fetch_bytes} bytes)" if d.fetch_bytes >= 1024 else ""
        console.print(f"{plural(shared, 'layer')} shared; a node holding A fetches "
                      f"{plural(len(d.blobs_only_b), 'blob')}, {human_size(d.fetch_bytes)}{exact} "
                      "for B", highlight=False)
    if not d.same:
        sys.exit(1)
