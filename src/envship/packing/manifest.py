"""The manifest: what an env is made of; its canonical JSON hash is the env id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ManifestError

__all__ = [
    "SCHEMA",
    "SCHEMA_1",
    "SCHEMA_3",
    "SCHEMAS",
    "LAYER_KINDS",
    "LAYER_KINDS_1",
    "BYTECODE",
    "SOURCES",
    "PythonInfo",
    "LayerRef",
    "Distribution",
    "Excluded",
    "Manifest",
    "canonical_json",
]

SCHEMA = "envship.manifest/2"  # what pack writes
SCHEMA_1 = "envship.manifest/1"  # still read (envs already in stores)
SCHEMA_3 = "envship.manifest/3"  # conda envs: conda layers, relocations, unpacked sizes
SCHEMAS = (SCHEMA_1, SCHEMA, SCHEMA_3)
LAYER_KINDS = ("python", "code", "dist")
LAYER_KINDS_3 = ("python", "conda", "code", "dist")
RELOCATION_MODES = ("text", "binary")
LAYER_KINDS_1 = ("python", "deps", "code")
BYTECODE = ("packed", "node", "none")  # schema 2: who compiles a code/dist layer's .py files
SOURCES = ("index", "editable", "local", "vcs", "archive", "conda", "unknown")


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the exact bytes the env id is computed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class PythonInfo:
    implementation: str  # "cpython"
    version: str  # "3.11.7"
    abi: str  # "cp311"
    platform: str  # "manylinux_2_36_x86_64" / "linux_x86_64"
    cache_tag: str | None = None  # "cpython-311" (sys.implementation.cache_tag); schema 2

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class LayerRef:
    kind: str  # one of LAYER_KINDS (schema 1: LAYER_KINDS_1)
    digest: str  # "sha256:<hex>" of the blob bytes
    size: int  # blob size in bytes
    files: int  # regular files in the layer
    url: str | None = None  # presigned variants only; never part of the env id
    dists: tuple[str, ...] = ()  # schema 2, code/dist layers: "name==version" it holds, sorted
    bytecode: str | None = None  # schema 2: one of BYTECODE (python layer: "packed" or None)
    unpacked: int | None = None  # schema 3: bytes of its regular files once extracted
    package: Mapping[str, str] | None = None  # schema 3, conda: name/version/build/subdir/noarch
    relocations: tuple[tuple[str, str, str], ...] = ()  # conda: (path, placeholder, mode)
    entry_points: tuple[str, ...] = ()  # noarch python conda packages: "name = module:func"

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    source: str  # one of SOURCES
    layer: str  # schema 2: digest of the layer holding it; schema 1: that layer's kind


@dataclass(frozen=True)
class Excluded:
    """A distribution of the environment left out of the env, and why."""

    name: str
    version: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    python: PythonInfo
    layers: tuple[LayerRef, ...]
    distributions: tuple[Distribution, ...] = ()
    entry_points: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    excluded: tuple[Excluded, ...] = ()
    schema: str | None = None  # None: implied by the content (see __post_init__)

    def __post_init__(self) -> None:
        if self.schema is None:  # built in code: schema 2 when something only it has is used
            v2 = self.python.cache_tag is not None or any(
                lay.kind == "dist" or lay.dists or lay.bytecode for lay in self.layers)
            object.__setattr__(self, "schema", SCHEMA if v2 else SCHEMA_1)

    @property
    def schema_id(self) -> str:
        """The schema this manifest is written in (read from the file, or implied)."""
        return self.schema or SCHEMA

    # -- identity ---------------------------------------------------------------
    def hashed_dict(self) -> dict[str, Any]:
        """The part the env id covers: everything but presigned layer URLs."""
        v3 = self.schema_id == SCHEMA_3
        v2 = self.schema_id == SCHEMA or v3
        python = {
            "implementation": self.python.implementation,
            "version": self.python.version,
            "abi": self.python.abi,
            "platform": self.python.platform,
        }
        if v2 and self.python.cache_tag is not None:
            python["cache_tag"] = self.python.cache_tag
        layers: list[dict[str, Any]] = []
        for lay in self.layers:
            out: dict[str, Any] = {
                "kind": lay.kind, "digest": lay.digest, "size": lay.size, "files": lay.files
            }
            if v2 and lay.kind != "python":
                out["dists"] = list(lay.dists)
            if v2 and lay.bytecode is not None:
                out["bytecode"] = lay.bytecode
            if v3:
                out["unpacked"] = lay.unpacked or 0
                if lay.package is not None:
                    out["package"] = dict(lay.package)
                    out["relocations"] = [{"path": p, "placeholder": ph, "mode": m}
                                          for p, ph, m in lay.relocations]
                    if lay.entry_points:
                        out["entry_points"] = list(lay.entry_points)
            layers.append(out)
        return {
            "schema": self.schema_id,
            "python": python,
            "layers": layers,
            "distributions": [
                {"name": d.name, "version": d.version, "source": d.source, "layer": d.layer}
                for d in self.distributions
            ],
            "entry_points": {g: dict(sorted(eps.items())) for g, eps in self.entry_points.items()},
            "excluded": [
                {"name": e.name, "version": e.version, "reason": e.reason} for e in self.excluded
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        data = self.hashed_dict()
        for out, lay in zip(data["layers"], self.layers, strict=True):
            if lay.url is not None:
                out["url"] = lay.url
        return data

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @property
    def env_id(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`hashed_dict`."""
        return hashlib.sha256(canonical_json(self.hashed_dict())).hexdigest()

    def layer(self, kind: str) -> LayerRef | None:
        """The first layer of *kind* (schema 2 has many ``code`` / ``dist`` layers)."""
        return next((lay for lay in self.layers if lay.kind == kind), None)

    def layers_of(self, kind: str) -> tuple[LayerRef, ...]:
        return tuple(lay for lay in self.layers if lay.kind == kind)

    def layer_of(self, dist_name: str) -> LayerRef | None:
        """The layer holding distribution *dist_name* (either schema)."""
        dist = next((d for d in self.distributions if d.name == dist_name), None)
        if dist is None:
            return None
        if dist.layer.startswith("sha256:"):
            return next((lay for lay in self.layers if lay.digest == dist.layer), None)
        return self.layer(dist.layer)

    # -- loading ----------------------------------------------------------------
    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "manifest") -> Manifest:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(
                f"{source}: not valid JSON ({exc}); re-create it with `envship pack`."
            ) from exc
        return cls.from_dict(obj, source=source)

    @classmethod
    def from_dict(cls, obj: Any, *, source: str = "manifest") -> Manifest:
        def fail(what: str) -> ManifestError:
            return ManifestError(f"{source}: {what}; re-create it with `envship pack`.")

        if not isinstance(obj, dict):
            raise fail("expected a JSON object")
        schema = obj.get("schema")
        if schema not in SCHEMAS:
            raise fail(f"unknown schema {schema!r} (this envship reads {' and '.join(SCHEMAS)})")
        v3 = schema == SCHEMA_3
        v2 = schema == SCHEMA or v3
        try:
            py = obj["python"]
            cache_tag = py.get("cache_tag") if v2 and isinstance(py, dict) else None
            if cache_tag is not None and (not isinstance(cache_tag, str) or not cache_tag):
                raise TypeError("'cache_tag' must be a non-empty string")
            python = PythonInfo(
                implementation=_str(py, "implementation"),
                version=_str(py, "version"),
                abi=_str(py, "abi"),
                platform=_str(py, "platform"),
                cache_tag=cache_tag,
            )
            layers = tuple(_layer(x, v2, v3) for x in _list(obj, "layers"))
            dists = tuple(
                Distribution(
                    _str(d, "name"), _str(d, "version"), _str(d, "source"), _str(d, "layer")
                )
                for d in _list(obj, "distributions")
            )
            eps_raw = obj.get("entry_points", {})
            if not isinstance(eps_raw, dict):
                raise TypeError("entry_points must be an object")
            eps: dict[str, dict[str, str]] = {}
            for group, items in eps_raw.items():
                if not isinstance(items, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in items.items()
                ):
                    raise TypeError(f"entry_points[{group!r}] must map names to strings")
                eps[str(group)] = dict(items)
            excluded = tuple(
                Excluded(_str(e, "name"), _str(e, "version"), _str(e, "reason"))
                for e in obj.get("excluded", [])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(f"bad field: {exc}") from exc
        if v2:
            _check_layers_2(layers, dists, fail)
        else:
            kinds = [lay.kind for lay in layers]
            if len(set(kinds)) != len(kinds):
                raise fail(f"duplicate layer kinds {kinds}")
        return cls(python, layers, dists, eps, excluded, schema)


def _check_layers_2(
    layers: tuple[LayerRef, ...],
    dists: tuple[Distribution, ...],
    fail: Callable[[str], ManifestError],
) -> None:
    """Schema 2 rules: one python layer at most, unique digests, distributions point at one."""
    if sum(lay.kind == "python" for lay in layers) > 1:
        raise fail("more than one python layer")
    digests = [lay.digest for lay in layers]
    if len(set(digests)) != len(digests):
        raise fail("a layer digest is listed twice")
    known = set(digests)
    for d in dists:
        if d.layer not in known:
            raise fail(f"distribution {d.name} points at {d.layer!r}, which is not a layer")


def _str(obj: Any, key: str) -> str:
    if not isinstance(obj, dict):
        raise TypeError(f"expected an object holding {key!r}")
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key!r} must be a non-empty string")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"{key!r} must be a non-negative integer")
    return value


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise TypeError(f"{key!r} must be a list")
    return value


def _conda_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Schema 3: ``unpacked`` and a conda layer's package, relocations and entry points."""
    out: dict[str, Any] = {"unpacked": _int(obj, "unpacked")}
    pkg = obj.get("package")
    if pkg is None:
        return out
    if not isinstance(pkg, dict) or not all(isinstance(v, str) and v for v in pkg.values()):
        raise TypeError("layer 'package' must map name/version/build/subdir to strings")
    for key in ("name", "version", "build", "subdir"):
        _str(pkg, key)
    out["package"] = dict(pkg)
    rel = []
    for r in _list(obj, "relocations"):
        path, ph, mode = _str(r, "path"), _str(r, "placeholder"), _str(r, "mode")
        if mode not in RELOCATION_MODES:
            raise ValueError(f"relocation mode {mode!r} is not text or binary")
        rel.append((path, ph, mode))
    if rel != sorted(rel):
        raise ValueError("layer 'relocations' are not sorted by path")
    out["relocations"] = tuple(rel)
    eps = _list(obj, "entry_points")
    if not all(isinstance(e, str) and "=" in e for e in eps):
        raise TypeError("layer 'entry_points' must be 'name = module:function' strings")
    out["entry_points"] = tuple(eps)
    return out


def _layer(obj: Any, v2: bool, v3: bool = False) -> LayerRef:
    kind = _str(obj, "kind")
    allowed = LAYER_KINDS_3 if v3 else LAYER_KINDS if v2 else LAYER_KINDS_1
    if kind not in allowed:
        raise ValueError(f"unknown layer kind {kind!r} (expected one of {', '.join(allowed)})")
    digest = _str(obj, "digest")
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"layer digest {digest!r} is not 'sha256:<64 hex>'")
    url = obj.get("url")
    if url is not None and not isinstance(url, str):
        raise TypeError("layer 'url' must be a string")
    dists: tuple[str, ...] = ()
    bytecode = None
    if v2 and kind != "python":
        raw = obj.get("dists", [])
        if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
            raise TypeError("layer 'dists' must be a list of 'name==version' strings")
        dists = tuple(raw)
        if kind == "dist" and not dists:
            raise ValueError(f"dist layer {digest} names no distribution")
    if v2:
        bytecode = obj.get("bytecode")
        if bytecode is not None and bytecode not in BYTECODE:
            raise ValueError(f"layer 'bytecode' {bytecode!r} is not one of {', '.join(BYTECODE)}")
    extra = _conda_fields(obj) if v3 else {}
    return LayerRef(kind, digest, _int(obj, "size"), _int(obj, "files"), url, dists, bytecode,
                    **extra)
