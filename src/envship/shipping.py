"""`pack()` and `ship()`: pack an environment, and publish it to a store, in one call."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .env import Env
from .errors import EnvNotFound, PackError, StoreError
from .node.formats import blob_key
from .packing.archive import Blob
from .packing.pipeline import PackResult
from .paths import default_store_url
from .progress import Progress
from .store import PublishResult, Store, open_store
from .store.publish import BlobUnavailable

__all__ = ["pack", "ship", "ship_result", "ShipResult"]

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .packing.buildcache import SharedCache
    from .packing.options import PackOptions, ShipOptions

log = logging.getLogger(__name__)


def pack(
    python: str | os.PathLike[str] | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    shared_cache: SharedCache | None = None,
    **pack_opts: Unpack[PackOptions],
) -> PackResult:
    """Pack the environment of *python* (see :func:`envship.packing.pipeline.pack`).

    With *output*, the layers and manifest are written there as a local store (the same
    layout and the same publish as :func:`ship` to a directory); parents are created.
    """
    from .packing.pipeline import pack as pack_env

    out = _check_output(Path(output)) if output is not None else None
    packed = pack_env(python, progress=progress, shared_cache=shared_cache, **pack_opts)
    if out is None:
        return packed
    existed = out.exists()
    try:
        open_store(str(out)).publish(packed.manifest, packed.blobs, provenance=False)
    except (StoreError, OSError) as exc:
        if not existed:  # nothing half-written is left behind
            shutil.rmtree(out, ignore_errors=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise PackError(f"cannot write pack output to {out}: {reason}") from exc
    placed = {d: out.joinpath(*blob_key(d)) for d in packed.blobs}
    return replace(packed, blobs=placed, output=out)


def _check_output(out: Path) -> Path:
    """Fail early (before any work) when *out* cannot be a pack output directory."""
    out = Path(os.path.abspath(out.expanduser()))  # "../x" printed as the directory it is
    if out.exists() and not out.is_dir():
        raise PackError(f"output {out} exists and is not a directory; choose another -o.")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise PackError(f"output {out}: {probe} is not a directory; choose another -o.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PackError(f"output directory {out} is not writable; choose another -o.")
    return out


@dataclass(frozen=True)
class ShipResult:
    """What ship() did: the published env, what was uploaded, what was built, the tag."""

    env: Env
    publish: PublishResult
    built: Mapping[str, bool]  # layer digest -> archived now (False: from the build cache)
    tag_uri: str | None
    env_prefix: str | None = None  # the packed environment (None: built from a lock)

    def to_dict(self) -> dict[str, Any]:
        data = self.publish.to_dict()
        data["env_prefix"] = self.env_prefix
        for layer in data["layers"]:
            layer["built"] = self.built.get(layer["digest"])
        data["store"] = self.env.store_url
        data["tag_uri"] = self.tag_uri
        return data


def ship_result(
    store_url: str | Path | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    tag: str | None = None,
    progress: Progress | None = None,
    provenance: bool = True,
    store_cache: bool = True,
    **pack_opts: Unpack[ShipOptions],
) -> ShipResult:
    """:func:`ship`, returning what was uploaded and built as well."""
    store = open_store(store_url if store_url is not None else default_store_url(),
                       storage_options)
    if tag is not None:
        from .store.tags import check_tag_name

        check_tag_name(tag)  # fail before the (long) pack, not after it
    # Client setup (session, credentials, TLS) overlaps with packing.
    warm_up = threading.Thread(target=store.connect, name="envship-store-connect", daemon=True)
    warm_up.start()
    from .store import teamcache  # ship only: `pack -o` does not load it

    shared = store if teamcache.enabled(store_cache) else None
    packed = pack(shared_cache=shared, **pack_opts)  # no output: the blobs go to the store
    warm_up.join()
    try:
        result = store.publish(packed.manifest, packed.blobs, progress, provenance=provenance)
    except BlobUnavailable as exc:  # a gc took a reused blob meanwhile: build it here
        log.warning("%s", exc)
        packed = pack(**pack_opts)
        result = store.publish(packed.manifest, packed.blobs, progress, provenance=provenance)
    # The team build cache learns what was built now, and what this machine built before
    # for blobs the store lacked until this publish (a new store, or one a gc emptied).
    sent = {lay.digest for lay in result.layers if lay.uploaded}
    mappings = {**{fp: d for fp, d in packed.known_contents.items() if d in sent},
                **packed.shareable}
    if shared is not None and mappings:
        sizes = {lay.digest: lay for lay in packed.manifest.layers}
        store.record_builds({
            fp: Blob(d, sizes[d].size, sizes[d].files, None, sizes[d].unpacked or 0)
            for fp, d in mappings.items() if d in sizes
        })
    tag_uri = _tag(store, tag, packed, result.env_id) if tag is not None else None
    env = Env(result.env_uri, packed.manifest, store.url, dict(store.storage_options))
    return ShipResult(env, result, dict(packed.built), tag_uri, packed.env_prefix)


def _tag(store: Store, tag: str, packed: PackResult, env_id: str) -> str:
    """Point *tag* at the env just published. A gc that collected the env in between (it was
    unreferenced until the tag) makes the tag refuse; publishing again is cheap, so do."""
    try:
        return str(store.set_tag(tag, env_id))
    except EnvNotFound:
        pass
    store.publish(packed.manifest, packed.blobs)
    return str(store.set_tag(tag, env_id))


def ship(
    store_url: str | Path | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    tag: str | None = None,
    progress: Progress | None = None,
    store_cache: bool = True,
    **pack_opts: Unpack[ShipOptions],
) -> Env:
    """Pack an environment (the running venv by default; `python=` for another) and publish
    the layers the store lacks, then its manifest. Returns the published :class:`Env`.

    *store_url*: a local path or fsspec URL (default :func:`default_store_url`);
    *storage_options*: passed to fsspec (credentials, `endpoint_url`, ...);
    *tag*: also point `tags/<tag>.json` at the env; *store_cache*: reuse blobs the store's
    team build cache maps to the same files (``ENVSHIP_NO_STORE_CACHE=1`` turns it off too);
    *pack_opts*: as :func:`pack`.
    """
    return ship_result(
        store_url, storage_options=storage_options, tag=tag, progress=progress,
        store_cache=store_cache, **pack_opts
    ).env
