"""The manifest: what an env is made of; its canonical JSON hash is the env id.

Typed views over the format that :mod:`envship.node.formats` defines and validates: every
manifest read here passed the one validator first, and every one built here is checked by it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..node import formats
from ..node.formats import BYTECODE, SCHEMA, SCHEMA_1, SCHEMA_2, SCHEMA_3, SCHEMAS, SOURCES
from ..node.formats import canonical_json as canonical_json

__all__ = [
    "SCHEMA",
    "SCHEMA_1",
    "SCHEMA_2",
    "SCHEMA_3",
    "SCHEMAS",
    "BYTECODE",
    "SOURCES",
    "PythonInfo",
    "CondaPackage",
    "Relocation",
    "LayerRef",
    "Distribution",
    "Excluded",
    "Manifest",
    "canonical_json",
]


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
class CondaPackage:
    """The conda package a ``conda`` (or conda ``python``) layer holds (schema 3)."""

    name: str
    version: str
    build: str
    subdir: str  # "linux-64", "noarch", ...
    noarch: str | None = None  # "python" / "generic" for noarch packages


@dataclass(frozen=True)
class Relocation:
    """A file of a conda layer stored with a prefix placeholder the node rewrites (schema 3)."""

    path: str  # relative to the prefix
    placeholder: str
    mode: str  # "text" or "binary"


@dataclass(frozen=True)
class LayerRef:
    kind: str  # one of formats.LAYER_KINDS[schema]
    digest: str  # "sha256:<hex>" of the blob bytes
    size: int  # blob size in bytes
    files: int  # regular files in the layer
    url: str | None = None  # presigned variants only; never part of the env id
    dists: tuple[str, ...] = ()  # schema 2+, code/dist layers: "name==version" it holds, sorted
    bytecode: str | None = None  # schema 2+: one of BYTECODE (python layer: "packed" or None)
    unpacked: int | None = None  # schema 3: bytes of its regular files (extraction bound)
    package: CondaPackage | None = None  # schema 3: conda and conda-python layers
    relocations: tuple[Relocation, ...] = ()  # schema 3, with package: sorted by path
    entry_points: tuple[str, ...] = ()  # schema 3, noarch python packages: "name = mod:func"

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
    """An env's layers, interpreter and distributions; its env id is the sha256 of its
    canonical JSON (docs/formats.md)."""

    python: PythonInfo
    layers: tuple[LayerRef, ...]
    distributions: tuple[Distribution, ...] = ()
    entry_points: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    excluded: tuple[Excluded, ...] = ()
    schema: str | None = None  # None: implied by the content (see __post_init__)

    def __post_init__(self) -> None:
        if self.schema is None:  # built in code: the newest schema whose fields are all there
            v2 = self.python.cache_tag is not None or any(
                lay.kind == "dist" or lay.dists or lay.bytecode for lay in self.layers)
            v3 = self.layers and all(lay.unpacked is not None for lay in self.layers)
            implied = SCHEMA_3 if v3 and self.python.cache_tag else SCHEMA_2 if v2 else SCHEMA_1
            object.__setattr__(self, "schema", implied)
        formats.check_manifest(self.to_dict(), "manifest", presigned=self.presigned)

    @property
    def schema_id(self) -> str:
        """The schema this manifest is written in (read from the file, or implied)."""
        return self.schema or SCHEMA

    @property
    def presigned(self) -> bool:
        """Do its layers carry URLs (a presigned manifest)?"""
        return any(lay.url is not None for lay in self.layers)

    @property
    def is_conda(self) -> bool:
        return any(lay.package is not None for lay in self.layers)

    # -- identity ---------------------------------------------------------------
    def hashed_dict(self) -> dict[str, Any]:
        """The part the env id covers: everything but presigned layer URLs."""
        schema = self.schema_id
        python = {
            "implementation": self.python.implementation,
            "version": self.python.version,
            "abi": self.python.abi,
            "platform": self.python.platform,
        }
        if schema != SCHEMA_1 and self.python.cache_tag is not None:
            python["cache_tag"] = self.python.cache_tag
        return {
            "schema": schema,
            "python": python,
            "layers": [_layer_dict(lay, schema) for lay in self.layers],
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
    def from_json(
        cls, data: bytes | str, *, source: str = "manifest", presigned: bool = False
    ) -> Manifest:
        raw = data.encode() if isinstance(data, str) else data
        return cls.from_dict(formats.parse_document(raw, source), source=source,
                             presigned=presigned)

    @classmethod
    def from_dict(cls, obj: Any, *, source: str = "manifest", presigned: bool = False) -> Manifest:
        """The manifest *obj* (parsed JSON), judged by :func:`formats.check_manifest`."""
        formats.check_manifest(obj, source, presigned=presigned)
        py = obj["python"]
        python = PythonInfo(py["implementation"], py["version"], py["abi"], py["platform"],
                            py.get("cache_tag"))
        return cls(
            python,
            tuple(_layer(x) for x in obj["layers"]),
            tuple(Distribution(d["name"], d["version"], d["source"], d["layer"])
                  for d in obj["distributions"]),
            {str(g): dict(items) for g, items in obj["entry_points"].items()},
            tuple(Excluded(e["name"], e["version"], e["reason"]) for e in obj["excluded"]),
            obj["schema"],
        )


def _layer_dict(lay: LayerRef, schema: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": lay.kind, "digest": lay.digest, "size": lay.size, "files": lay.files
    }
    if schema == SCHEMA_1:
        return out
    if schema == SCHEMA_3:
        out["unpacked"] = lay.unpacked
    if lay.kind in ("code", "dist"):
        out["dists"] = list(lay.dists)
    if lay.bytecode is not None:
        out["bytecode"] = lay.bytecode
    if lay.package is not None:
        pkg = {"name": lay.package.name, "version": lay.package.version,
               "build": lay.package.build, "subdir": lay.package.subdir}
        if lay.package.noarch is not None:
            pkg["noarch"] = lay.package.noarch
        out["package"] = pkg
        out["relocations"] = [
            {"path": r.path, "placeholder": r.placeholder, "mode": r.mode}
            for r in lay.relocations
        ]
        if lay.entry_points:
            out["entry_points"] = list(lay.entry_points)
    return out


def _layer(obj: dict[str, Any]) -> LayerRef:
    """A layer entry that :func:`formats.check_manifest` accepted."""
    pkg = obj.get("package")
    package = None if pkg is None else CondaPackage(
        pkg["name"], pkg["version"], pkg["build"], pkg["subdir"], pkg.get("noarch"))
    return LayerRef(
        obj["kind"], obj["digest"], obj["size"], obj["files"], obj.get("url"),
        tuple(obj.get("dists", ())), obj.get("bytecode"), obj.get("unpacked"), package,
        tuple(Relocation(r["path"], r["placeholder"], r["mode"])
              for r in obj.get("relocations", ())),
        tuple(obj.get("entry_points", ())),
    )
