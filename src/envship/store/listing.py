"""What a store holds: envs with their date, size and tags."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any

from ..errors import EnvshipError
from . import retry
from .fetch import read_manifest, read_text
from .fs import StoreLocation, mtime_of
from .tags import ENV_ID_RE, list_tags

__all__ = ["EnvInfo", "list_envs", "env_entries", "created_of"]


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
        }


def env_entries(loc: StoreLocation, policy: retry.RetryPolicy) -> dict[str, dict[str, Any]]:
    """`ls envs/` with details: env id -> fsspec info of its manifest."""

    def ls() -> list[dict[str, Any]]:
        loc.fs.invalidate_cache(loc.path("envs"))  # another process may have written since
        try:
            return list(loc.fs.ls(loc.path("envs"), detail=True))
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
    except (EnvshipError, ValueError, KeyError, TypeError, AttributeError):
        return mtime_of(entry)


def list_envs(loc: StoreLocation, policy: retry.RetryPolicy) -> list[EnvInfo]:
    """Every env in the store, newest first; damaged manifests are skipped."""
    tags = list_tags(loc, policy)
    by_env: dict[str, list[str]] = {}
    for name, env_id in tags.items():
        by_env.setdefault(env_id, []).append(name)
    infos = []
    for env_id, entry in env_entries(loc, policy).items():
        try:
            manifest = read_manifest(loc, env_id, policy)
        except EnvshipError:
            continue
        infos.append(
            EnvInfo(
                env_id=env_id,
                uri=loc.url_of("envs", f"{env_id}.json"),
                created=created_of(loc, env_id, entry, policy),
                size=sum(lay.size for lay in manifest.layers),
                layers=tuple(lay.kind for lay in manifest.layers),
                digests=tuple(lay.digest for lay in manifest.layers),
                tags=tuple(sorted(by_env.get(env_id, ()))),
                python=f"{manifest.python.implementation} {manifest.python.version}",
            )
        )
    infos.sort(key=lambda i: (-(i.created or 0.0), i.env_id))
    return infos
