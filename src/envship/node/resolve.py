"""Env reference -> verified manifest: env URI, tag URI, packed dir or presigned manifest."""

from __future__ import annotations

import hashlib
import json
import os

from .errors import NodeError
from .fetch import local_path, read_url, safe_url
from .ref import is_hex64 as _is_hex64
from .ref import packed_env_id, parse_ref

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Resolved", "resolve", "follow", "env_id_of", "hashed_json", "SCHEMA"]

SCHEMA = "envship.manifest/1"


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


def hashed_json(manifest: dict[str, Any]) -> bytes:
    """Canonical JSON of the manifest without layer ``url`` fields (what the env id covers)."""
    data = dict(manifest)
    layers = data.get("layers")
    if isinstance(layers, list):
        data["layers"] = [
            {k: v for k, v in lay.items() if k != "url"} if isinstance(lay, dict) else lay
            for lay in layers
        ]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def env_id_of(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(hashed_json(manifest)).hexdigest()


def _join(root: str, *parts: str) -> str:
    if "://" in root and not root.startswith("file://"):
        return "/".join([root.rstrip("/"), *parts])
    return os.path.join(local_path(root), *parts)


def _load(url: str, what: str) -> tuple[bytes, Any]:
    data = read_url(url)
    try:
        return data, json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise NodeError(f"{safe_url(url)}: {what} is not valid JSON") from None


def _parse(ref: str) -> Any:
    try:
        return parse_ref(ref)
    except ValueError as exc:
        raise NodeError(str(exc)) from None


def follow(ref: str) -> str:
    """The manifest URL *ref* leads to: tags are read, packed directories listed."""
    parsed = _parse(ref)
    if parsed.kind == "packed":
        return os.path.join(parsed.name, "envs", packed_env_id(parsed.name) + ".json")
    if parsed.kind == "tag":
        _, tag = _load(ref, "tag")
        env_id = tag.get("env") if isinstance(tag, dict) else None
        if not isinstance(env_id, str) or not _is_hex64(env_id):
            raise NodeError(f"{safe_url(ref)}: not a tag (expected {{\"env\": \"<env id>\"}})")
        return _join(parsed.store, "envs", env_id + ".json")
    return ref


def resolve(ref: str) -> Resolved:
    """Read and verify the manifest *ref* points to; tags are followed, then verified too."""
    url = follow(ref)
    parsed = _parse(url)
    expected = parsed.env_id
    if expected is None:  # follow() always ends at an env or presigned manifest
        raise NodeError(f"{safe_url(ref)}: does not lead to a manifest")
    raw, manifest = _load(url, "manifest")
    _check_schema(manifest, url)
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
            hex_ = lay["digest"].split(":", 1)[1]
            urls[lay["digest"]] = _join(store, "blobs", "sha256", hex_ + ".tar.gz")
        else:
            raise NodeError(
                f"{safe_url(url)}: layer {lay['digest']} has no url and the manifest is not "
                "inside a store's envs/ directory, so its blob cannot be found"
            )
    return Resolved(expected, manifest, raw, urls, safe_url(url))


def _check_schema(manifest: Any, url: str) -> None:
    def bad(what: str) -> NodeError:
        return NodeError(f"{safe_url(url)}: {what}; re-create it with `envship pack`")

    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else None
        raise bad(f"unknown manifest schema {got!r} (this node runtime reads {SCHEMA!r})")
    py = manifest.get("python")
    if not isinstance(py, dict) or not all(
        isinstance(py.get(k), str) for k in ("implementation", "version", "abi", "platform")
    ):
        raise bad("bad 'python' field")
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise bad("bad 'layers' field")
    kinds = set()
    for lay in layers:
        digest = lay.get("digest") if isinstance(lay, dict) else None
        if (
            not isinstance(digest, str)
            or not digest.startswith("sha256:")
            or not _is_hex64(digest[7:])
            or lay.get("kind") not in ("python", "deps", "code")
            or not isinstance(lay.get("size"), int)
            or lay["kind"] in kinds
        ):
            raise bad(f"bad layer entry {lay!r}")
        kinds.add(lay["kind"])
    eps = manifest.get("entry_points", {})
    if not isinstance(eps, dict) or not all(isinstance(v, dict) for v in eps.values()):
        raise bad("bad 'entry_points' field")
