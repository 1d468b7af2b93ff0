"""Compare two manifests: distributions added, removed, changed; layers that differ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .manifest import Manifest

__all__ = ["EnvDiff", "diff_manifests"]


@dataclass(frozen=True)
class EnvDiff:
    """What differs between env A and env B."""

    added: tuple[tuple[str, str], ...]  # (name, version) only in B
    removed: tuple[tuple[str, str], ...]  # only in A
    changed: tuple[tuple[str, str, str], ...]  # (name, version in A, version in B)
    layers: dict[str, str]  # kind -> "same" | "changed" | "added" | "removed"
    python: tuple[str, str] | None  # (A, B) when the interpreter differs

    @property
    def same(self) -> bool:
        return not (
            self.added or self.removed or self.changed or self.python
            or any(v != "same" for v in self.layers.values())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "same": self.same,
            "added": [{"name": n, "version": v} for n, v in self.added],
            "removed": [{"name": n, "version": v} for n, v in self.removed],
            "changed": [{"name": n, "from": a, "to": b} for n, a, b in self.changed],
            "layers": dict(self.layers),
            "python": list(self.python) if self.python else None,
        }


def _py(m: Manifest) -> str:
    p = m.python
    return f"{p.implementation} {p.version} {p.abi} {p.platform}"


def diff_manifests(a: Manifest, b: Manifest) -> EnvDiff:
    """Distributions added / removed / changed (version or source), and layers changed."""
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
    layers: dict[str, str] = {}
    for kind in ("python", "code", "deps"):
        la, lb = a.layer(kind), b.layer(kind)
        if la is None and lb is None:
            continue
        if la is None:
            layers[kind] = "added"
        elif lb is None:
            layers[kind] = "removed"
        else:
            layers[kind] = "same" if la.digest == lb.digest else "changed"
    python = (_py(a), _py(b)) if _py(a) != _py(b) else None
    return EnvDiff(added, removed, tuple(changed), layers, python)
