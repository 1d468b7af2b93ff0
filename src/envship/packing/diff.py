"""Compare two manifests: distributions added, removed, changed; layers that differ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .manifest import LayerRef, Manifest

__all__ = ["BlobRef", "EnvDiff", "diff_manifests", "layer_label"]


@dataclass(frozen=True)
class BlobRef:
    """One layer blob, as diff reports it."""

    label: str  # "python", "code", "code mylib", "dist numpy"
    digest: str
    size: int


@dataclass(frozen=True)
class EnvDiff:
    """What differs between env A and env B, and what a node holding A fetches for B."""

    added: tuple[tuple[str, str], ...]  # (name, version) only in B
    removed: tuple[tuple[str, str], ...]  # only in A
    changed: tuple[tuple[str, str, str], ...]  # (name, version in A, version in B)
    layers: dict[str, str]  # layer label -> "same" | "changed" | "added" | "removed"
    python: tuple[str, str] | None  # (A, B) when the interpreter differs
    blobs_only_b: tuple[BlobRef, ...] = ()  # B's blobs that A does not have: what gets fetched
    blobs_only_a: tuple[BlobRef, ...] = ()
    other: tuple[str, ...] = ()  # other manifest fields that differ: "excluded", "entry_points"

    @property
    def fetch_bytes(self) -> int:
        """Bytes a node holding A's blobs downloads to run B."""
        return sum(b.size for b in self.blobs_only_b)

    @property
    def same(self) -> bool:
        return not (
            self.added or self.removed or self.changed or self.python or self.other
            or any(v != "same" for v in self.layers.values())
        )

    def to_dict(self) -> dict[str, Any]:
        def blob(b: BlobRef) -> dict[str, Any]:
            return {"layer": b.label, "digest": b.digest, "size": b.size}

        return {
            "same": self.same,
            "added": [{"name": n, "version": v} for n, v in self.added],
            "removed": [{"name": n, "version": v} for n, v in self.removed],
            "changed": [{"name": n, "from": a, "to": b} for n, a, b in self.changed],
            "layers": dict(self.layers),
            "python": list(self.python) if self.python else None,
            "blobs_only_in_b": [blob(b) for b in self.blobs_only_b],
            "blobs_only_in_a": [blob(b) for b in self.blobs_only_a],
            "fetch_bytes": self.fetch_bytes,
            "other": list(self.other),
        }


def _py(m: Manifest) -> str:
    p = m.python
    return f"{p.implementation} {p.version} {p.abi} {p.platform}"


def layer_label(layer: LayerRef) -> str:
    """A layer's name across versions of its distributions: ``dist numpy``, ``code mylib``."""
    if layer.package is not None and layer.kind == "conda":  # one layer per conda package
        return f"{layer.kind} {layer.package.name}"
    names = ",".join(d.partition("==")[0] for d in layer.dists)
    return f"{layer.kind} {names}" if names else layer.kind


def _labelled(m: Manifest) -> dict[str, LayerRef]:
    out: dict[str, LayerRef] = {}
    for lay in m.layers:
        out.setdefault(layer_label(lay), lay)
    return out


def diff_manifests(a: Manifest, b: Manifest) -> EnvDiff:
    """Distributions added / removed / changed (version or source), layers changed, and the
    blobs (with their bytes) that B has and A has not."""
    da = {d.name: d for d in a.distributions}
    db = {d.name: d for d in b.distributions}
    added = tuple((n, db[n].version) for n in sorted(db.keys() - da.keys()))
    removed = tuple((n, da[n].version) for n in sorted(da.keys() - db.keys()))
    changed = []
    for n in sorted(da.keys() & db.keys()):
        x, y = da[n], db[n]
        if (x.version, x.source) != (y.version, y.source):
            va = x.version if x.source == y.source else f"{x.version} ({x.source})"
            vb = y.version if x.source == y.source else f"{y.version} ({y.source})"
            changed.append((n, va, vb))
    la, lb = _labelled(a), _labelled(b)
    layers: dict[str, str] = {}
    for label in sorted(la.keys() | lb.keys(), key=lambda k: (k.split(" ")[0] != "python", k)):
        lx, ly = la.get(label), lb.get(label)
        if lx is None:
            layers[label] = "added"
        elif ly is None:
            layers[label] = "removed"
        else:
            layers[label] = "same" if lx.digest == ly.digest else "changed"
    in_a = {lay.digest for lay in a.layers}
    in_b = {lay.digest for lay in b.layers}
    only_b = tuple(BlobRef(layer_label(lay), lay.digest, lay.size)
                   for lay in b.layers if lay.digest not in in_a)
    only_a = tuple(BlobRef(layer_label(lay), lay.digest, lay.size)
                   for lay in a.layers if lay.digest not in in_b)
    python = (_py(a), _py(b)) if _py(a) != _py(b) else None
    other = tuple(f for f in ("excluded", "entry_points") if getattr(a, f) != getattr(b, f))
    return EnvDiff(added, removed, tuple(changed), layers, python, only_b, only_a, other)
