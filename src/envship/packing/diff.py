"""Load a manifest from a path, packed directory or URL, and compare two manifests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .manifest import LayerRef, Manifest

__all__ = ["BlobRef", "EnvDiff", "diff_manifests", "layer_label", "load_manifest"]


def _read_url(url: str) -> bytes:
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec is a dependency
        raise ManifestError(f"cannot read {url}: fsspec is not installed") from exc
    try:
        with fsspec.open(url, "rb") as fh:
            data: bytes = fh.read()
            return data
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read manifest {url}: {exc}") from exc


def load_manifest(ref: str | os.PathLike[str]) -> tuple[Manifest, str]:
    """(manifest, where it came from) for a manifest file, a packed directory, or a URL."""
    text = os.fspath(ref)
    if "://" in text and not text.startswith("file://"):
        manifest = Manifest.from_json(_read_url(text), source=text)
        _check_id(manifest, text.split("?", 1)[0], text)
        return manifest, text
    path = Path(text.removeprefix("file://")).expanduser()
    if path.is_dir():
        envs = sorted((path / "envs").glob("*.json")) if (path / "envs").is_dir() else []
        if len(envs) != 1:
            what = "no manifest" if not envs else f"{len(envs)} manifests"
            raise ManifestError(
                f"{path} holds {what} under envs/; pass the manifest file "
                "(<dir>/envs/<env-id>.json) itself."
            )
        path = envs[0]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    manifest = Manifest.from_json(data, source=str(path))
    _check_id(manifest, path.as_posix(), str(path))
    return manifest, str(path)


def _check_id(manifest: Manifest, location: str, shown: str) -> None:
    """A manifest stored as ``envs/<env-id>.json`` must hash to that id."""
    parent, _, name = location.rstrip("/").rpartition("/")
    stem = name.removesuffix(".json")
    if parent.endswith("envs") and len(stem) == 64 and stem != manifest.env_id:
        raise ManifestError(
            f"{shown}: content does not match its env id (the file was modified or damaged); "
            "re-create it with `envship pack`."
        )


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

    @property
    def fetch_bytes(self) -> int:
        """Bytes a node holding A's blobs downloads to run B."""
        return sum(b.size for b in self.blobs_only_b)

    @property
    def same(self) -> bool:
        return not (
            self.added or self.removed or self.changed or self.python
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
        }


def _py(m: Manifest) -> str:
    p = m.python
    return f"{p.implementation} {p.version} {p.abi} {p.platform}"


def layer_label(layer: LayerRef) -> str:
    """A layer's name across versions of its distributions: ``dist numpy``, ``code mylib``."""
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
    return EnvDiff(added, removed, tuple(changed), layers, python, only_b, only_a)
