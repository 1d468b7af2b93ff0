"""The one home of envship's formats: manifest schemas and their validator, canonical JSON and
the env id, digests, and the store layout. Standard library only (bundled into the node script).

Everything that reads a manifest (pack, inspect, diff, store verify, engines, the node runtime)
judges it here, so what one accepts runs everywhere and what one refuses is refused everywhere,
with the same message.
"""

from __future__ import annotations

# json and hashlib are imported where used: `envship exec`'s warm path imports this module (via
# node.ref) and must not pay for json, re and hashlib before it execs the command.
from .errors import ManifestInvalid

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "SCHEMA", "SCHEMA_1", "SCHEMA_2", "SCHEMA_3", "SCHEMAS", "LAYER_KINDS", "BYTECODE",
    "SOURCES", "RELOCATION_MODES", "NOARCH", "MAX_DOCUMENT_BYTES",
    "check_manifest", "parse_document", "canonical_json", "hashed_json", "env_id_of",
    "is_hex64", "is_digest", "digest_hex", "is_merged", "is_conda", "layer_order",
    "BLOBS", "ENVS", "TAGS", "LEASES", "SWEEPS", "FINGERPRINTS", "BLOB_SUFFIX",
    "blob_key", "env_key", "presigned_key", "provenance_key", "tag_key", "lease_key",
    "sweep_key", "fingerprint_key", "blob_name_hex", "env_name_id", "tag_name",
]

SCHEMA_1 = "envship.manifest/1"  # one deps layer; views put each layer on sys.path
SCHEMA_2 = "envship.manifest/2"  # package-granular layers merged into one site-packages
SCHEMA_3 = "envship.manifest/3"  # + unpacked bounds per layer, conda packages and relocations
SCHEMA = SCHEMA_3  # what pack writes
SCHEMAS = (SCHEMA_1, SCHEMA_2, SCHEMA_3)  # what every reader reads

# Layer kinds per schema, in the order a manifest lists them (schema 1: any order).
LAYER_KINDS = {
    SCHEMA_1: ("python", "deps", "code"),
    SCHEMA_2: ("python", "code", "dist"),
    SCHEMA_3: ("python", "conda", "code", "dist"),
}
BYTECODE = ("packed", "node", "none")  # who compiles a layer's .py files: pack, node, nobody
SOURCES = ("index", "editable", "local", "vcs", "archive", "conda", "unknown")
RELOCATION_MODES = ("text", "binary")  # conda's file_mode of a file holding a placeholder
NOARCH = ("python", "generic")
MAX_DOCUMENT_BYTES = 64 << 20  # manifests, tags, presigned manifests: read no more than this
_TOP_KEYS = ("schema", "python", "layers", "distributions", "entry_points", "excluded")
_HEX = frozenset("0123456789abcdef")


# -- digests and canonical JSON ---------------------------------------------------------------
def is_hex64(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in _HEX for c in text)


def is_digest(text: object) -> bool:
    """``sha256:<64 lowercase hex>``, the only digest form envship writes."""
    return isinstance(text, str) and text.startswith("sha256:") and is_hex64(text[7:])


def digest_hex(digest: str) -> str:
    """The hex part of ``sha256:<hex>`` (a bare 64-hex string is returned as is)."""
    hex_ = digest[7:] if digest.startswith("sha256:") else digest
    if not is_hex64(hex_):
        raise ValueError(f"{digest!r} is not 'sha256:<64 hex>'")
    return hex_


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the exact bytes the env id is computed from."""
    import json

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def hashed_json(manifest: dict[str, Any]) -> bytes:
    """Canonical JSON of *manifest* without layer ``url`` fields: what the env id covers."""
    data = dict(manifest)
    layers = data.get("layers")
    if isinstance(layers, list):
        data["layers"] = [
            {k: v for k, v in lay.items() if k != "url"} if isinstance(lay, dict) else lay
            for lay in layers
        ]
    return canonical_json(data)


def env_id_of(manifest: dict[str, Any]) -> str:
    """The env id: sha256 (hex) of :func:`hashed_json`."""
    import hashlib

    return hashlib.sha256(hashed_json(manifest)).hexdigest()


def parse_document(data: bytes, source: str, what: str = "manifest") -> Any:
    """JSON from a store object, with one-line errors for bad, oversized or absurdly nested
    input (a RecursionError never escapes)."""
    import json

    if len(data) > MAX_DOCUMENT_BYTES:
        raise ManifestInvalid(
            f"{source}: {what} is larger than {MAX_DOCUMENT_BYTES >> 20} MB; not an envship file")
    try:
        return json.loads(data)
    except RecursionError:
        raise ManifestInvalid(f"{source}: {what} is nested too deeply; not an envship file"
                              ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"{source}: {what} is not valid JSON ({exc})") from None


# -- the validator ----------------------------------------------------------------------------
def is_merged(manifest: dict[str, Any]) -> bool:
    """Does this (checked) manifest's view merge its layers into one site-packages?"""
    return manifest.get("schema") in (SCHEMA_2, SCHEMA_3)


def is_conda(manifest: dict[str, Any]) -> bool:
    """Is this (checked) manifest a conda env (its view is a conda prefix)?"""
    return any("package" in lay for lay in manifest.get("layers", ()))


def layer_order(schema: str, kind: str) -> int:
    return LAYER_KINDS[schema].index(kind)


def check_manifest(manifest: Any, source: str, *, presigned: bool = False) -> None:
    """Raise :class:`ManifestInvalid` (one line naming *source*) unless *manifest* is a valid
    manifest of a schema this envship reads. Layer ``url`` fields are allowed only in a
    presigned manifest (*presigned*), and only http(s)."""
    why = _problem(manifest, presigned)
    if why is not None:
        raise ManifestInvalid(f"{source}: {why}; re-create it with `envship pack`")


def _problem(m: Any, presigned: bool) -> str | None:
    if not isinstance(m, dict):
        return "not a manifest (expected a JSON object)"
    schema = m.get("schema")
    if schema not in SCHEMAS:
        readable = " and ".join(repr(s) for s in SCHEMAS)
        return f"unknown manifest schema {schema!r} (this envship reads {readable})"
    missing = [k for k in _TOP_KEYS if k not in m]
    extra = sorted(str(k) for k in m if k not in _TOP_KEYS)
    if missing or extra:
        return (f"missing field {missing[0]!r}" if missing
                else f"unknown field {extra[0]!r} (schema {schema})")
    why = _python_problem(m["python"], schema)
    if why:
        return why
    layers = m["layers"]
    if not isinstance(layers, list) or (schema != SCHEMA_1 and not layers):
        return "bad 'layers' field (a non-empty list of layer objects)"
    kinds: list[str] = []
    digests: list[str] = []
    for i, lay in enumerate(layers):
        why = _layer_problem(lay, schema, presigned)
        if why is None and lay["digest"] in digests:
            why = "the same digest twice"
        if why is None and schema == SCHEMA_1 and lay["kind"] in kinds:
            why = f"a second {lay['kind']} layer (schema 1 has at most one of each kind)"
        if why:
            return f"bad layer entry {_layer_name(i, lay)}: {why}"
        kinds.append(lay["kind"])
        digests.append(lay["digest"])
    if schema != SCHEMA_1:
        if kinds.count("python") > 1:
            return "more than one python layer"
        order = [layer_order(schema, k) for k in kinds]
        if order != sorted(order):
            return (f"layers out of order ({', '.join(kinds)}): "
                    f"{', then '.join(LAYER_KINDS[schema])}")
    return _tables_problem(m, schema, digests, kinds)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _layer_name(i: int, lay: Any) -> str:
    digest = lay.get("digest") if isinstance(lay, dict) else None
    return f"#{i} ({str(digest)[:19]}…)" if is_digest(digest) else f"#{i}"


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, sort_keys=True, ensure_ascii=False)  # the same in every reader
    return text if len(text) <= 200 else text[:197] + "..."


def _python_problem(py: Any, schema: str) -> str | None:
    keys = ["implementation", "version", "abi", "platform"]
    if schema != SCHEMA_1:
        keys.append("cache_tag")
    need = f"bad 'python' field (needs string {', '.join(keys)})"
    if not isinstance(py, dict) or not all(_nonempty_str(py.get(k)) for k in keys):
        return need
    extra = sorted(str(k) for k in py if k not in keys)
    return f"bad 'python' field: unknown key {extra[0]!r}" if extra else None


_LAYER_KEYS = {
    SCHEMA_1: {"kind", "digest", "size", "files"},
    SCHEMA_2: {"kind", "digest", "size", "files", "dists", "bytecode"},
    SCHEMA_3: {"kind", "digest", "size", "files", "unpacked", "dists", "bytecode",
               "package", "relocations", "entry_points"},
}


def _layer_problem(lay: Any, schema: str, presigned: bool) -> str | None:
    """Why *lay* is not a valid layer entry of *schema*, or None."""
    if not isinstance(lay, dict):
        return "not an object"
    if not is_digest(lay.get("digest")):
        return "digest is not 'sha256:<64 hex>'"
    kinds = LAYER_KINDS[schema]
    kind = lay.get("kind")
    if kind not in kinds:
        return f"kind is not one of {', '.join(kinds)}"
    required = ["size", "files"] + (["unpacked"] if schema == SCHEMA_3 else [])
    for key in required:
        if key not in lay:
            return f"no {key!r}"
        if not _count(lay[key]):
            return f"{key!r} is not a non-negative integer"
    extra = sorted(str(k) for k in lay if k not in _LAYER_KEYS[schema] and k != "url")
    if extra:
        return f"unknown key {extra[0]!r}"
    if "url" in lay:
        why = _url_problem(lay["url"], presigned)
        if why:
            return why
    if schema == SCHEMA_1:
        return None
    if kind == "python":
        if lay.get("bytecode", "packed") != "packed":
            return "'bytecode' of the python layer is not 'packed'"
        if "dists" in lay or "entry_points" in lay:
            return "a python layer holds no 'dists' or 'entry_points'"
    else:
        if kind in ("code", "dist"):
            dists = lay.get("dists")
            # a code layer of stray site-packages files (owned by no distribution) names none
            if not isinstance(dists, list) or (not dists and kind != "code") or not all(
                isinstance(d, str) and "==" in d and d.split("==", 1)[0] for d in dists
            ):
                return "'dists' is not a list of 'name==version' (empty only for a code layer)"
        elif "dists" in lay:
            return "a conda layer names its package in 'package', not 'dists'"
        if lay.get("bytecode") not in BYTECODE:
            return f"'bytecode' is not one of {', '.join(BYTECODE)}"
    if kind in ("code", "dist") and ("package" in lay or "relocations" in lay
                                     or "entry_points" in lay):
        return f"a {kind} layer holds no 'package', 'relocations' or 'entry_points'"
    if kind == "conda" and "package" not in lay:
        return "a conda layer needs 'package'"
    if "package" in lay:
        return _conda_problem(lay)
    if "relocations" in lay or "entry_points" in lay:
        return "'relocations' and 'entry_points' belong to a layer with a 'package'"
    return None


def _url_problem(url: Any, presigned: bool) -> str | None:
    if not presigned:
        return ("a layer 'url' in an ordinary manifest (only presigned manifests, "
                "<env-id>.presigned.json, carry URLs)")
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        return "'url' is not an http(s) URL"
    return None


def _relative(path: Any) -> bool:
    if not _nonempty_str(path) or path.startswith("/") or "\0" in path or "\\" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _conda_problem(lay: dict[str, Any]) -> str | None:
    pkg = lay["package"]
    keys = ("name", "version", "build", "subdir")
    if not isinstance(pkg, dict) or not all(_nonempty_str(pkg.get(k)) for k in keys):
        return f"'package' needs string {', '.join(keys)}"
    extra = sorted(str(k) for k in pkg if k not in (*keys, "noarch"))
    if extra:
        return f"'package' has an unknown key {extra[0]!r}"
    if "noarch" in pkg and pkg["noarch"] not in NOARCH:
        return f"'package' noarch is not one of {', '.join(NOARCH)}"
    relocs = lay.get("relocations", [])
    if not isinstance(relocs, list):
        return "'relocations' is not a list"
    paths: list[str] = []
    for r in relocs:
        if (not isinstance(r, dict) or set(r) != {"path", "placeholder", "mode"}
                or not _relative(r["path"]) or not _nonempty_str(r["placeholder"])
                or r["mode"] not in RELOCATION_MODES):
            return (f"bad relocation {_short(r)} (needs a relative 'path', a 'placeholder' and "
                    f"a 'mode' of {' or '.join(RELOCATION_MODES)})")
        paths.append(r["path"])
    if paths != sorted(set(paths)):
        return "'relocations' are not sorted by path, or name a path twice"
    eps = lay.get("entry_points", [])
    if not isinstance(eps, list) or not all(
        isinstance(e, str) and "=" in e and ":" in e for e in eps
    ):
        return "'entry_points' is not a list of 'name = module:function'"
    if eps and pkg.get("noarch") != "python":
        return "'entry_points' belong to a noarch python package"
    return None


def _tables_problem(
    m: dict[str, Any], schema: str, digests: list[str], kinds: list[str]
) -> str | None:
    dists = m["distributions"]
    if not isinstance(dists, list):
        return "bad 'distributions' field (a list)"
    targets = set(digests) if schema != SCHEMA_1 else set(kinds)
    for d in dists:
        if (not isinstance(d, dict) or set(d) != {"name", "version", "source", "layer"}
                or not all(_nonempty_str(d[k]) for k in d)):
            return f"bad distribution {_short(d)} (needs string name, version, source, layer)"
        if d["layer"] not in targets:
            return f"distribution {d['name']} names no layer of this manifest"
    eps = m["entry_points"]
    if not isinstance(eps, dict) or not all(
        isinstance(v, dict) and all(isinstance(k, str) and isinstance(s, str)
                                    for k, s in v.items())
        for v in eps.values()
    ):
        return "bad 'entry_points' field (groups mapping names to strings)"
    excluded = m["excluded"]
    if not isinstance(excluded, list) or not all(
        isinstance(e, dict) and set(e) == {"name", "version", "reason"}
        and all(isinstance(e[k], str) for k in e) for e in excluded
    ):
        return "bad 'excluded' field (a list of {name, version, reason})"
    return None


# -- the store layout -------------------------------------------------------------------------
# Every path of a store is spelled here, as a tuple of parts under the store root; callers join
# them with their filesystem's separator.
BLOBS = ("blobs", "sha256")  # immutable layer blobs
ENVS = ("envs",)  # immutable manifests (+ presigned and provenance files)
TAGS = ("tags",)  # mutable pointers {"env": "<env-id>"}
LEASES = ("leases",)  # publish/gc protocol (docs/store.md)
SWEEPS = ("sweeps",)
FINGERPRINTS = ("fingerprints",)  # content fingerprint -> blob digest
BLOB_SUFFIX = ".tar.gz"


def blob_key(digest: str) -> tuple[str, ...]:
    return (*BLOBS, digest_hex(digest) + BLOB_SUFFIX)


def env_key(env_id: str) -> tuple[str, ...]:
    return (*ENVS, env_id + ".json")


def presigned_key(env_id: str) -> tuple[str, ...]:
    return (*ENVS, env_id + ".presigned.json")


def provenance_key(env_id: str) -> tuple[str, ...]:
    return (*ENVS, env_id + ".provenance.json")


def tag_key(name: str) -> tuple[str, ...]:
    return (*TAGS, name + ".json")


def lease_key(name: str) -> tuple[str, ...]:
    return (*LEASES, name + ".json")


def sweep_key(name: str) -> tuple[str, ...]:
    return (*SWEEPS, name + ".json")


def fingerprint_key(fingerprint: str) -> tuple[str, ...]:
    return (*FINGERPRINTS, fingerprint + ".json")


def blob_name_hex(name: str) -> str | None:
    """The hex digest a file name under ``blobs/sha256/`` stands for, or None."""
    if name.endswith(BLOB_SUFFIX) and is_hex64(name[: -len(BLOB_SUFFIX)]):
        return name[: -len(BLOB_SUFFIX)]
    return None


def env_name_id(name: str) -> str | None:
    """The env id a manifest file name under ``envs/`` stands for (``<id>.json``), or None."""
    return name[:-5] if name.endswith(".json") and is_hex64(name[:-5]) else None


def tag_name(name: str) -> str | None:
    """The tag a file name under ``tags/`` stands for, or None."""
    return name[:-5] if name.endswith(".json") and len(name) > 5 and name[0] != "." else None
