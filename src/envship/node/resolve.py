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

__all__ = [
    "Resolved", "resolve", "follow", "env_id_of", "hashed_json", "SCHEMA",
    "SCHEMA_1", "SCHEMA_2", "SCHEMAS", "is_merged",
]

SCHEMA_1 = "envship.manifest/1"  # one deps layer, views put each layer on sys.path
SCHEMA_2 = "envship.manifest/2"  # package-granular layers, views merge them into one site
SCHEMAS = (SCHEMA_1, SCHEMA_2)
SCHEMA = SCHEMA_2  # the newest schema, the one pack writes
_KINDS = {SCHEMA_1: ("python", "deps", "code"), SCHEMA_2: ("python", "code", "dist")}
_BYTECODE = ("packed", "node", "none")


def is_merged(manifest: dict[str, Any]) -> bool:
    """Does this (checked) manifest's view merge its layers into one site-packages?"""
    return manifest.get("schema") == SCHEMA_2


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

    schema = manifest.get("schema") if isinstance(manifest, dict) else None
    if schema not in SCHEMAS:
        readable = " and ".join(repr(s) for s in SCHEMAS)
        raise bad(f"unknown manifest schema {schema!r} (this node runtime reads {readable})")
    py = manifest.get("python")
    keys = ["implementation", "version", "abi", "platform"]
    if schema == SCHEMA_2:
        keys.append("cache_tag")
    if not isinstance(py, dict) or not all(isinstance(py.get(k), str) and py[k] for k in keys):
        raise bad(f"bad 'python' field (needs string {', '.join(keys)})")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or (schema == SCHEMA_2 and not layers):
        raise bad("bad 'layers' field")
    kinds: list[str] = []
    digests: set[str] = set()
    for lay in layers:
        why = _layer_problem(lay, schema)
        if why is None and lay["digest"] in digests:
            why = "the same digest twice"
        if why is None and schema == SCHEMA_1 and lay["kind"] in kinds:
            why = f"a second {lay['kind']} layer (schema 1 has at most one of each kind)"
        if why:
            raise bad(f"bad layer entry {lay!r}: {why}")
        kinds.append(lay["kind"])
        digests.add(lay["digest"])
    if schema == SCHEMA_2:
        order = {"python": 0, "code": 1, "dist": 2}
        if kinds.count("python") > 1:
            raise bad("more than one python layer")
        if [order[k] for k in kinds] != sorted(order[k] for k in kinds):
            raise bad(f"layers out of order ({', '.join(kinds)}): python, then code, then dist")
        dists = manifest.get("distributions", [])
        if not isinstance(dists, list):
            raise bad("bad 'distributions' field")
        for dist in dists:
            if not isinstance(dist, dict) or dist.get("layer") not in digests:
                raise bad(f"distribution {dist!r} names no layer of this manifest")
    eps = manifest.get("entry_points", {})
    if not isinstance(eps, dict) or not all(isinstance(v, dict) for v in eps.values()):
        raise bad("bad 'entry_points' field")


def _layer_problem(lay: Any, schema: str) -> str | None:
    """Why *lay* is not a valid layer entry of *schema*, or None."""
    if not isinstance(lay, dict):
        return "not an object"
    digest = lay.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or not _is_hex64(digest[7:]):
        return "digest is not 'sha256:<64 hex>'"
    kinds = _KINDS[schema]
    if lay.get("kind") not in kinds:
        return f"kind is not one of {', '.join(kinds)}"
    for key in ("size", "files"):
        value = lay.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"{key!r} is not a non-negative integer"
    if "size" not in lay:
        return "no 'size'"
    if "url" in lay and not isinstance(lay["url"], str):
        return "'url' is not a string"
    if schema == SCHEMA_2 and lay["kind"] != "python":
        dists = lay.get("dists")
        # a code layer of stray site-packages files (owned by no distribution) names none
        empty_ok = lay["kind"] == "code"
        if not isinstance(dists, list) or (not dists and not empty_ok) or not all(
            isinstance(d, str) and "==" in d and d.split("==", 1)[0] for d in dists
        ):
            return "'dists' is not a list of 'name==version' (empty only for a code layer)"
        if lay.get("bytecode") not in _BYTECODE:
            return f"'bytecode' is not one of {', '.join(_BYTECODE)}"
    elif schema == SCHEMA_2 and lay.get("bytecode", "packed") != "packed":
        return "'bytecode' of the python layer is not 'packed'"
    return None
