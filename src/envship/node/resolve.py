"""Env reference -> verified manifest: env URI, tag URI, packed dir or presigned manifest."""

from __future__ import annotations

import os

from . import formats
from .errors import NodeError
from .fetch import local_path, read_url, safe_url
from .formats import (  # noqa: F401
    SCHEMA,
    SCHEMA_1,
    SCHEMA_2,
    SCHEMA_3,
    SCHEMAS,
    env_id_of,
    hashed_json,
    is_merged,
)
from .ref import packed_env_id, parse_ref

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Resolved", "resolve", "follow", "env_id_of", "hashed_json", "SCHEMA",
    "SCHEMA_1", "SCHEMA_2", "SCHEMA_3", "SCHEMAS", "is_merged",
]


class Resolved:
    """A manifest whose canonical hash equals the env id its URI names, and its layers' URLs."""

    __slots__ = ("env_id", "manifest", "raw", "layer_urls", "source")

    def __init__(
        self, env_id: str, manifest: dict[str, Any], raw: bytes, layer_urls: dict[str, str],
        source: str,
    ) -> None:
        self.env_id = env_id
        self.manifest = manifest
        self.raw = raw
        self.layer_urls = layer_urls  # "sha256:<hex>" -> URL or local path
        self.source = source


def _join(root: str, *parts: str) -> str:
    if "://" in root and not root.startswith("file://"):
        return "/".join([root.rstrip("/"), *parts])
    return os.path.join(local_path(root), *parts)


def _load(url: str, what: str) -> tuple[bytes, Any]:
    data = read_url(url)
    return data, formats.parse_document(data, safe_url(url), what)


def _parse(ref: str) -> Any:
    try:
        return parse_ref(ref)
    except ValueError as exc:
        raise NodeError(str(exc)) from None


def follow(ref: str) -> str:
    """The manifest URL *ref* leads to: tags are read, packed directories listed."""
    parsed = _parse(ref)
    if parsed.kind == "packed":
        return os.path.join(parsed.name, *formats.env_key(packed_env_id(parsed.name)))
    if parsed.kind == "tag":
        _, tag = _load(ref, "tag")
        env_id = tag.get("env") if isinstance(tag, dict) else None
        if not isinstance(env_id, str) or not formats.is_hex64(env_id):
            raise NodeError(f"{safe_url(ref)}: not a tag (expected {{\"env\": \"<env id>\"}})")
        return _join(parsed.store, *formats.env_key(env_id))
    return ref


def resolve(ref: str) -> Resolved:
    """Read and verify the manifest *ref* points to; tags are followed, then verified too."""
    url = follow(ref)
    parsed = _parse(url)
    expected = parsed.env_id
    if expected is None:  # follow() always ends at an env or presigned manifest
        raise NodeError(f"{safe_url(ref)}: does not lead to a manifest")
    raw, manifest = _load(url, "manifest")
    formats.check_manifest(manifest, safe_url(url), presigned=parsed.kind == "presigned")
    actual = env_id_of(manifest)
    if actual != expected:
        raise NodeError(
            f"{safe_url(url)}: manifest content (sha256 {actual[:16]}…) does not match the env id "
            f"in its name ({expected[:16]}…); the store was modified, refusing to run it"
        )
    store = parsed.store
    urls: dict[str, str] = {}
    for lay in manifest["layers"]:
        if isinstance(lay.get("url"), str):
            urls[lay["digest"]] = lay["url"]
        elif store is not None:
            urls[lay["digest"]] = _join(store, *formats.blob_key(lay["digest"]))
        else:
            raise NodeError(
                f"{safe_url(url)}: layer {lay['digest']} has no url and the manifest is not "
                "inside a store's envs/ directory, so its blob cannot be found"
            )
    return Resolved(expected, manifest, raw, urls, safe_url(url))
