"""What a store holds: envs with their date, size and tags."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from ..errors import EnvshipError, StoreError
from ..node.formats import (
    BLOBS,
    ENVS,
    FINGERPRINTS,
    LEASES,
    SWEEPS,
    TAGS,
    env_key,
    env_name_id,
    parse_document,
    provenance_key,
)
from .fetch import read_manifest
from .io import Entry, StoreIO
from .tags import list_tags

__all__ = ["EnvInfo", "check_store", "created_of", "env_entries", "env_ids", "list_envs"]


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


def env_entries(io: StoreIO) -> dict[str, Entry]:
    """env id -> the listing entry of its manifest, for every env in the store."""
    out: dict[str, Entry] = {}
    for entry in io.entries(ENVS):
        env_id = env_name_id(entry.name)
        if env_id is not None:
            out[env_id] = entry
    return out


def env_ids(io: StoreIO) -> list[str]:
    """Env ids with a manifest in the store (presigned/provenance side files excluded)."""
    return sorted(env_entries(io))


def created_of(io: StoreIO, env_id: str, entry: Entry) -> float | None:
    """When *env_id* was published: its provenance's date, else its manifest's mtime."""
    key = provenance_key(env_id)
    try:
        stamp = parse_document(io.read(key, "provenance"), io.url_of(key), "provenance")
        return _dt.datetime.fromisoformat(stamp["created"].replace("Z", "+00:00")).timestamp()
    except (EnvshipError, ValueError, KeyError, TypeError, AttributeError):
        return entry.mtime


def check_store(io: StoreIO) -> None:
    """A StoreError unless the store exists and looks like a store (or is empty): a mistyped
    store URL must not read as "no envs". An object store has no empty folders: one whose
    last env and blob a gc removed leaves nothing under its prefix, so there the bucket (or
    container) must exist."""
    found = io.listing(())
    if found is None and io.caps.object_store:
        bucket = io.path(()).split("/", 1)[0]
        if io.call(lambda: io.fs.exists(bucket), f"looking for the bucket {bucket}"):
            return
    if found is None:
        made = ("the bucket must exist already: create it, then `envship ship` creates the "
                "store in it" if io.caps.object_store else
                "a store is created by the first `envship ship` to it")
        raise StoreError(f"store {io.url} does not exist; check the path or URL ({made})")
    envs, blobs, tags = ENVS[0], BLOBS[0], TAGS[0]
    # a first ship killed early leaves only its lease (a gc, its marker): still a store, and
    # gc must be able to clear it
    ours = {envs, blobs, tags, LEASES[0], SWEEPS[0], FINGERPRINTS[0]}
    if found and not ours & {e.name for e in found}:
        raise StoreError(
            f"{io.url} is not an envship store (no {envs}/, {blobs}/ or {tags}/ in it); "
            "check the path or URL"
        )


def list_envs(io: StoreIO, *, include_damaged: bool = False) -> list[EnvInfo]:
    """Every env in the store, newest first. Damaged manifests are skipped, or with
    *include_damaged* listed with ``damaged`` saying what is wrong."""
    by_env: dict[str, list[str]] = {}
    for name, env_id in list_tags(io).items():
        by_env.setdefault(env_id, []).append(name)
    infos = []
    for env_id, entry in env_entries(io).items():
        uri = io.url_of(env_key(env_id))
        env_tags = tuple(sorted(by_env.get(env_id, ())))
        try:
            manifest = read_manifest(io, env_id)
        except EnvshipError as exc:
            if include_damaged:
                infos.append(EnvInfo(env_id, uri, entry.mtime, 0, (), (), env_tags, "-",
                                     damaged=str(exc)))
            continue
        infos.append(
            EnvInfo(
                env_id=env_id,
                uri=uri,
                created=created_of(io, env_id, entry),
                size=sum(lay.size for lay in manifest.layers),
                layers=tuple(lay.kind for lay in manifest.layers),
                digests=tuple(lay.digest for lay in manifest.layers),
                tags=env_tags,
                python=f"{manifest.python.implementation} {manifest.python.version}",
            )
        )
    infos.sort(key=lambda i: (-(i.created or 0.0), i.env_id))
    return infos
