"""CLI commands: ship, store ls, tag, gc, presign."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from . import builders_opts as bo
from .app import (
    STORE_DEFAULT_HELP,
    AsJson,
    app,
    console,
    err_console,
    human_size,
    note,
    packed_line,
    short_id,
    show_progress,
    utc_stamp,
)

__all__: list[str] = []

store_app = typer.Typer(help="Inspect a store.", no_args_is_help=True)
app.add_typer(store_app, name="store")

_STORE_OPT_HELP = (
    "fsspec storage option KEY=VALUE (repeatable; dotted keys nest, e.g. "
    "client_kwargs.region_name=eu-west-1; values parse as JSON when they can)."
)

_StoreOpts = Annotated[
    list[str] | None,
    typer.Option("--storage-option", "-s", metavar="KEY=VALUE", help=_STORE_OPT_HELP),
]
_StoreArg = Annotated[
    str | None,
    typer.Argument(metavar="STORE",
                   help=f"Store: local path or fsspec URL ({STORE_DEFAULT_HELP})."),
]


def _options(pairs: list[str] | None) -> dict[str, Any]:
    from ..store import parse_storage_options

    return parse_storage_options(pairs or [])



class _Progress:
    """Byte counter fed from upload threads, shown as a rich progress bar."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=err_console.real, transient=True,
        )
        self.task = self.bar.add_task("upload", total=None)
        self.sizes: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, digest: str, sent: int, size: int) -> None:
        with self.lock:
            if digest not in self.sizes:
                self.sizes[digest] = size
                self.bar.update(self.task, total=sum(self.sizes.values()))
            self.bar.advance(self.task, sent)


@app.command()
def ship(
    store_url: _StoreArg = None,
    python: bo.EnvPython = None,
    with_python: bo.WithPython = False,
    tag: Annotated[
        str | None,
        typer.Option("--tag", "-t", metavar="NAME", help="Also point tags/NAME.json at the env."),
    ] = None,
    storage_option: _StoreOpts = None,
    exclude: bo.Exclude = None,
    only: bo.Only = None,
    include: bo.Include = None,
    no_provenance: Annotated[
        bool, typer.Option("--no-provenance", help="Skip envs/<id>.provenance.json.")
    ] = False,
    no_store_cache: Annotated[
        bool, typer.Option("--no-store-cache",
                           help="Build every layer here instead of reusing blobs the store's "
                                "build cache maps to the same files (also "
                                "ENVSHIP_NO_STORE_CACHE=1).")
    ] = False,
    requirements: bo.Requirements = None,
    python_version: bo.PythonVersion = None,
    platform: bo.Platform = None,
    strict: bo.Strict = False,
    code: bo.Code = None,
    as_json: AsJson = False,
) -> None:
    """Pack an environment and publish what the store lacks; prints the env URI."""
    from .. import choose_target, ship_result

    lock = bo.lock_opts(requirements, python_version, platform, strict, code)
    target = None if lock else choose_target(python)
    progress = _Progress() if not as_json and show_progress() else None
    pack_opts: dict[str, Any] = {
        "python": target.python if target is not None else python,
        "with_python": with_python,
        "exclude": tuple(exclude or ()),
        "only": tuple(only or ()),
        "include": tuple(include or ()),
        **lock,
    }
    if progress is not None:
        with progress.bar:
            result = ship_result(
                store_url, storage_options=_options(storage_option), tag=tag,
                progress=progress, provenance=not no_provenance,
                store_cache=not no_store_cache, **pack_opts,
            )
    else:
        result = ship_result(
            store_url, storage_options=_options(storage_option), tag=tag,
            provenance=not no_provenance, store_cache=not no_store_cache, **pack_opts,
        )
    if target is not None:
        p = result.env.manifest.python
        note(packed_line(result.env_prefix, p.implementation, p.version, target.reason))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    pub = result.publish
    for layer in pub.layers:
        state = "uploaded" if layer.uploaded else "present"
        err_console.print(
            f"  {layer.kind:<6} {layer.digest[7:19]}  {human_size(layer.size):>9}  {state}",
            highlight=False,
        )
    err_console.print(
        f"sent {human_size(pub.bytes_sent)} in {pub.seconds:.2f}s", highlight=False, style="dim"
    )
    if result.tag_uri:
        err_console.print(f"tag: {result.tag_uri}", highlight=False)
    print(pub.env_uri)


@store_app.command("ls")
def store_ls(
    store_url: _StoreArg = None,
    storage_option: _StoreOpts = None,
    as_json: AsJson = False,
) -> None:
    """List the envs in a store: id, date, total size, layers, tags; damaged ones too."""
    from rich.table import Table

    from ..store import default_store_url, open_store

    store = open_store(store_url or default_store_url(), _options(storage_option))
    if store_url is not None:  # the default store may not exist yet: nothing shipped so far
        store.check()
    envs = store.list_envs(include_damaged=True)
    if as_json:
        print(json.dumps([e.to_dict() for e in envs], indent=2))
    elif not envs:
        err_console.print(f"no envs in {store.url}", highlight=False)
    else:
        table = Table(box=None, pad_edge=False)
        for col in ("env id", "created (UTC)", "size", "layers", "python", "tags"):
            table.add_column(col)
        for e in envs:
            size = "[red]damaged[/]" if e.damaged else human_size(e.size)
            table.add_row(short_id(e.env_id), utc_stamp(e.created), size,
                          ",".join(e.layers) or "-", e.python, ",".join(e.tags))
        console.print(table)
    for e in envs:
        if e.damaged:
            from rich.markup import escape

            err_console.print(f"[red]damaged:[/] {escape(e.damaged)}", highlight=False)


@app.command()
def tag(
    target: Annotated[
        str, typer.Argument(metavar="TARGET", help="Env URI (…/envs/<id>.json) or a store URL.")
    ],
    name: Annotated[str, typer.Argument(help="Tag name: letters, digits, '.', '_', '-'.")],
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", metavar="REF", help="With a store URL: env id, prefix or tag."),
    ] = None,
    storage_option: _StoreOpts = None,
) -> None:
    """Point tags/NAME.json at an env (replaced atomically); prints the tag URI."""
    from .. import locate_env

    store, env_id = locate_env(target, env, _options(storage_option))
    uri = store.set_tag(name, env_id)
    err_console.print(f"{name} -> {env_id}", highlight=False)
    print(uri)


@app.command()
def gc(
    store_url: _StoreArg = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", metavar="N", help="Keep the N newest envs (tagged ones always)."),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", metavar="AGE",
                     help="Remove only envs older than AGE (90s, 30m, 12h, 7d, 2w; unit needed)."),
    ] = None,
    grace: Annotated[
        str,
        typer.Option("--grace", metavar="AGE",
                     help="Never remove blobs younger than AGE (uploads in flight)."),
    ] = "1h",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would go; delete nothing.")
    ] = False,
    storage_option: _StoreOpts = None,
    as_json: AsJson = False,
) -> None:
    """Remove old untagged envs (with --keep / --older-than) and unreferenced blobs."""
    from ..store import default_store_url, open_store, parse_duration

    store = open_store(store_url or default_store_url(), _options(storage_option))
    result = store.gc(
        keep=keep,
        older_than=parse_duration(older_than) if older_than else None,
        grace=parse_duration(grace),
        dry_run=dry_run,
    )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for env_id in result.envs_removed:
        console.print(f"{verb} env {env_id}", highlight=False)
    for digest in result.blobs_removed:
        console.print(f"{verb} blob {digest}", highlight=False)
    console.print(
        f"{verb} {len(result.envs_removed)} env(s), {len(result.blobs_removed)} blob(s), "
        f"{human_size(result.bytes_freed)}; {result.blobs_kept_young} unreferenced blob(s) kept "
        "(younger than the grace period)",
        highlight=False,
    )
    if result.envs_spared or result.blobs_spared:
        console.print(
            f"spared {len(result.envs_spared)} env(s) and {result.blobs_spared} blob(s) that a "
            "concurrent ship or tag claimed while gc ran", highlight=False)
    if result.leases_removed:
        console.print(f"removed {result.leases_removed} stale lease(s) of publishers that died",
                      highlight=False)
    if not result.complete:
        err_console.print("warning: gc stopped at its time limit before finishing; run it again",
                          highlight=False)


@app.command()
def presign(
    env_uri: Annotated[
        str, typer.Argument(metavar="ENV_URI", help="Env URI (…/envs/<id>.json) or tag URI.")
    ],
    expires: Annotated[
        int, typer.Option("--expires", metavar="SECONDS", help="Validity in seconds.")
    ] = 3600,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="PATH",
                     help="Write it in this directory (or as this <env-id>.presigned.json), "
                          "not in the store."),
    ] = None,
    storage_option: _StoreOpts = None,
) -> None:
    """Write a manifest whose layers carry presigned HTTPS URLs; print a URL (or path) of it.

    Nodes given that URL need neither credentials nor s3fs (`envship exec URL -- …`).
    """
    from .. import locate_env

    store, env_id = locate_env(env_uri, None, _options(storage_option))
    result = store.presign(env_id, expires=expires, output=output)
    err_console.print(
        f"presigned manifest: {result.location} (valid {expires}s)", highlight=False
    )
    print(result.url)


@store_app.command("verify")
def store_verify(
    store_url: _StoreArg = None,
    deep: Annotated[bool, typer.Option("--deep", help="Also re-hash every blob.")] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Re-upload damaged blobs the build cache holds.")
    ] = False,
    storage_option: _StoreOpts = None,
    as_json: AsJson = False,
) -> None:
    """Check every manifest and tag against the blobs; exit 1 if anything is damaged."""
    from ..store import default_store_url, open_store

    store = open_store(store_url or default_store_url(), _options(storage_option))
    result = store.verify(deep=deep, repair=repair)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for d in result.damage:
            mark = "repaired" if d.repaired else "DAMAGE"
            console.print(f"{mark}: {d.kind}: {d.detail}", highlight=False)
        for note in result.notes:
            err_console.print(note, highlight=False, style="dim")
        hashed = f", {human_size(result.bytes_hashed)} re-hashed" if deep else ""
        left = sum(not d.repaired for d in result.damage)
        console.print(
            f"{result.envs} env(s), {result.tags} tag(s), {result.blobs} blob(s){hashed}: "
            + ("ok" if result.ok else f"{left} problem(s)"),
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(1)
