"""`ship()`: pack an environment and publish it to a store in one call."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .env import Env
from .store import PublishResult, open_store
from .store.publish import Progress

__all__ = ["ship", "ship_result", "ShipResult", "default_store_url", "envship_home"]


def envship_home() -> Path:
    """`$ENVSHIP_HOME`, default `~/.local/share/envship`."""
    raw = os.environ.get("ENVSHIP_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".local" / "share" / "envship"


def default_store_url() -> str:
    """The store used when none is given: a local directory `$ENVSHIP_HOME/store`."""
    return str(envship_home() / "store")


@dataclass(frozen=True)
class ShipResult:
    env: Env
    publish: PublishResult
    built: Mapping[str, bool]  # layer kind -> archived now (False: from the build cache)
    tag_uri: str | None

    def to_dict(self) -> dict[str, Any]:
        data = self.publish.to_dict()
        for layer in data["layers"]:
            layer["built"] = self.built.get(layer["kind"])
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
    **pack_opts: Any,
) -> ShipResult:
    """:func:`ship`, returning what was uploaded and built as well."""
    from .packing import pack

    store = open_store(store_url if store_url is not None else default_store_url(),
                       storage_options)
    if tag is not None:
        from .store.tags import check_tag_name

        check_tag_name(tag)  # fail before the (long) pack, not after it
    # Client setup (session, credentials, TLS) overlaps with packing.
    warm_up = threading.Thread(target=store.connect, name="envship-store-connect", daemon=True)
    warm_up.start()
    packed = pack(**pack_opts)
    warm_up.join()
    result = store.publish(packed.manifest, packed.blobs, progress, provenance=provenance)
    tag_uri = store.set_tag(tag, result.env_id) if tag is not None else None
    env = Env(result.env_uri, packed.manifest, store.url, dict(store.storage_options))
    return ShipResult(env, result, dict(packed.built), tag_uri)


def ship(
    store_url: str | Path | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    tag: str | None = None,
    progress: Progress | None = None,
    **pack_opts: Any,
) -> Env:
    """Pack an environment (the running venv by default; `python=` for another) and publish
    the layers the store lacks, then its manifest. Returns the published :class:`Env`.

    *store_url*: a local path or fsspec URL (default :func:`default_store_url`);
    *storage_options*: passed to fsspec (credentials, `endpoint_url`, ...);
    *tag*: also point `tags/<tag>.json` at the env; *pack_opts*: as `envship.packing.pack`.
    """
    return ship_result(
        store_url, storage_options=storage_options, tag=tag, progress=progress, **pack_opts
    ).env
