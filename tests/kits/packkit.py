"""Helpers shared by the core tests."""

from __future__ import annotations

import tarfile

from envship.packing.diff import layer_label
from envship.packing.manifest import LayerRef
from envship.packing.pipeline import PackResult


def layer_ref(result: PackResult, which: str) -> LayerRef:
    """The layer of a pack: ``"python"``, ``"stray"`` (the code layer naming no distribution)
    or the name of a distribution (the layer holding it)."""
    m = result.manifest
    if which == "python":
        ref = m.layer("python")
    elif which == "stray":
        ref = next((lay for lay in m.layers if lay.kind == "code" and not lay.dists), None)
    else:
        ref = m.layer_of(which)
    assert ref is not None, f"no layer {which!r} in {[layer_label(x) for x in m.layers]}"
    return ref


def blob_names(result: PackResult, ref: LayerRef) -> list[str]:
    """Member names of the blob of *ref*, in archive order."""
    with tarfile.open(result.blobs[ref.digest], "r:gz") as tar:
        return tar.getnames()


def layer_names(result: PackResult, which: str) -> list[str]:
    """Member names of the blob of layer *which* (see :func:`layer_ref`), in archive order."""
    return blob_names(result, layer_ref(result, which))


def all_names(result: PackResult) -> set[str]:
    """Member names of every blob of the pack."""
    return {n for ref in result.manifest.layers for n in blob_names(result, ref)}


def built_by_label(result: PackResult) -> dict[str, bool]:
    """``{"dist numpy": True, "code mylib": False, ...}``: which layers were archived now."""
    return {layer_label(ref): result.built[ref.digest] for ref in result.manifest.layers}
