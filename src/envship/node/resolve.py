"""Env reference -> verified manifest: env URI, tag URI, packed dir or presigned manifest."""

from __future__ import annotations

import hashlib
import json
import os

from .cache import is_hex64 as _is_hex64
from .cache import ref_env_id
from .cache import split_ref as _split
from .errors import NodeError
from .fetch import is_local, local_path, read_url, safe_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Resolved", "resolve", "follow", "env_id_of", "hashed_json", "ref_env_id", "SCHEMA"]

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


def _packed_dir(path: str) -> str:
    envs = os.path.join(path, "envs")
    try:
        names = sorted(n for n in os.listdir(envs) if ref_env_id(n) and ".presigned" not in n)
    except OSError:
        names = []
    if len(names) != 1:
        found = f"{len(names)} manifests" if names else "no manifest"
        raise NodeError(
            f"{path}: a packed env directory holds exactly one envs/<env-id>.json, found {found}; "
            "pass the env URI (<store>/envs/<env-id>.json) instead"
        )
    return os.path.join(envs, names[0])


def _load(url: str, what: str) -> tuple[bytes, Any]:
    data = read_url(url)
    try:
        return data, json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise NodeError(f"{safe_url(url)}: {what} is not valid JSON") from None


def follow(ref: str) -> str:
    """The manifest URL *ref* leads to: tags are read, packed directories listed."""
    url = ref
    if is_local(ref) and os.path.isdir(local_path(ref)):
        url = _packed_dir(local_path(ref))
    head, name = _split(url)
    if _split(head)[1] == "tags" and name.endswith(".json"):
        _, tag = _load(url, "tag")
        env_id = tag.get("env") if isinstance(tag, dict) else None
        if not isinstance(env_id, str) or not _is_hex64(env_id):
            raise NodeError(f"{safe_url(url)}: not a tag (expected {{\"env\": \"<env id>\"}})")
        url = _join(_split(head)[0], "envs", env_id + ".json")
    return url


def resolve(ref: str) -> Resolved:
    """Read and verify the manifest *ref* points to; tags are followed, then verified too."""
    url = follow(ref)
    head, name = _split(url)
    expected = ref_env_id(url)
    if expected is None:
        raise NodeError(
            f"{safe_url(ref)}: not an env reference; expected <store>/envs/<env-id>.json, "
            "<store>/tags/<name>.json, <env-id>.presigned.json or a packed env directory"
        )
    raw, manifest = _load(url, "manifest")
    _check_schema(manifest, url)
    actual = env_id_of(manifest)
    if actual != expected:
        raise NodeError(
            f"{safe_url(url)}: manifest content (sha256 {actual[:16]}…) does not match the env id "
            f"in its name ({expected[:16]}…); the store was modified, refusing to run it"
        )
    store = _split(head)[0] if _split(head)[1] == "envs" else None
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
