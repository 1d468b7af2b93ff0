"""What a store holds: envs with their date, size and tags."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any

from ..errors import EnvshipError, StoreError
from . import retry
from .fetch import read_manifest, read_text
from .fs import StoreLocation, mtime_of
from .tags import ENV_ID_RE, list_tags

__all__ = ["EnvInfo", "check_store", "created_of", "env_entries", "list_envs"]


@dataclass(frozen=True)
class EnvInfo:
    env_id: str
    uri: str
    created: float | None  # POSIX seconds: provenance "created", else the manifest's mtime
    size: int  # sum of the layer blob sizes
    layers: tuple[str, ...]  # layer kinds
    digests: tuple[str, ...]
    tags: tuple[str, ...]
    python: str  # "cpython 3.11.7"
    damaged: str | None = None  # why its manifest cannot be read (then size/layers are empty)

    def to_dict(self) -> dict[str, Any]:
        created = (
            None
            if self.created is None
            else _dt.datetime.fromtimestamp(self.created, _dt.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        )
        return {
            "env_id": self.env_id,
            "uri": self.uri,
            "created": created,
            "size": self.size,
            "layers": list(self.layers),
            "tags": list(self.tags),
            "python": self.python,
            "damaged": self.damaged,
        }


def env_entries(loc: StoreLocation, policy: retry.RetryPolicy) -> dict[str, dict[str, Any]]:
    """`ls envs/` with details: env id -> fsspec info of its manifest."""

    def ls() -> list[dict[str, Any]]:
        loc.fs.invalidate_cache(loc.path("envs"))  # another process may have written since
        try:
            return loc.ls(loc.path("envs"), detail=True)
        except FileNotFoundError:
            return []

    try:
        entries = retry.call(ls, "listing envs/", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, "listing envs/", loc) from None
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = str(entry["name"]).rstrip("/").rpartition("/")[2]
        stem, _, ext = name.partition(".")
        if ext == "json" and ENV_ID_RE.fullmatch(stem):
            out[stem] = entry
    return out


def created_of(loc: StoreLocation, env_id: str, entry: dict[str, Any],
             policy: retry.RetryPolicy) -> float | None:
    try:
        data = read_text(loc, loc.env_path(env_id, ".provenance.json"), "provenance", policy)
        stamp = json.loads(data)["created"]
        return _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (EnvshipError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return mtime_of(entry)


def check_store(loc: StoreLocation, policy: retry.RetryPolicy) -> None:
    """A StoreError unless *loc* exists and looks like a store (or is empty): a mistyped
    store URL must not read as "no envs"."""

    def names() -> list[str] | None:
        try:
            found = loc.ls(loc.root or "/", detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return [str(n).rstrip("/").rpartition("/")[2] for n in found]

    try:
        found = retry.call(names, "looking for envs/", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, "looking for envs/", loc) from None
    if found is None:
        raise StoreError(
            f"store {loc.url} does not exist; check the path or URL (a store is created by "
            "the first `envship ship` to it)"
        )
    if found and not {"envs", "blobs", "tags"} & set(found):
        raise StoreError(
            f"{loc.url} is not an envship store (no envs/, blobs/ or tags/ in it); "
            "check the path or URL"
        )


def list_envs(
    loc: StoreLocation, policy: retry.RetryPolicy, *, include_damaged: bool = False,
) -> list[EnvInfo]:
    """Every env in the store, newest first. Damaged manifests are skipped, or with
    *include_damaged* listed with ``damaged`` saying what is wrong."""
    tags = list_tags(loc, policy)
    by_env: dict[str, list[str]] = {}
    for name, env_id in tags.items():
        by_env.setdefault(env_id, []).append(name)
    infos = []
    for env_id, entry in env_entries(loc, policy).items():
        uri = loc.url_of("envs", f"{env_id}.json")
        env_tags = tuple(sorted(by_env.get(env_id, ())))
        try:
            manifest = read_manifest(loc, env_id, policy)
        except EnvshipError as exc:
            if include_damaged:
                infos.append(EnvInfo(env_id, uri, mtime_of(entry), 0, (), (), env_tags, "-",
                                     damaged=str(exc)))
            continue
        infos.append(
            EnvInfo(
                env_id=env_id,
                uri=uri,
                created=created_of(loc, env_id, entry, policy),
                size=sum(lay.size for lay in manifest.layers),
                layers=tuple(lay.kind for lay in manifest.layers),
                digests=tuple(lay.digest for lay in manifest.layers),
                tags=env_tags,
                python=f"{manifest.python.implementation} {manifest.python.version}",
            )
        )
    infos.sort(key=lambda i: (-(i.created or 0.0), i.env_id))
    return infos
