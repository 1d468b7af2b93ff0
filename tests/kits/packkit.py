"""Helpers shared by the core tests."""

from __future__ import annotations

import tarfile

from envship.packing.pipeline import PackResult


def layer_names(result: PackResult, kind: str) -> list[str]:
    """Member names of the blob of layer *kind*, in archive order."""
    ref = result.manifest.layer(kind)
    assert ref is not None, f"no {kind} layer"
    with tarfile.open(result.blobs[ref.digest], "r:gz") as tar:
        return tar.getnames()
