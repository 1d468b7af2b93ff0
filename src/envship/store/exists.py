"""Which blobs a store holds with the right size, in few requests (one listing, or HEADs)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..node.formats import BLOBS, blob_name_hex
from ..packing.manifest import LayerRef
from .io import StoreIO
from .io.location import blob

__all__ = ["LIST_ABOVE", "HEADS_ENV", "MODE_ENV", "existing_blobs", "blob_present",
           "listed_blobs"]

log = logging.getLogger(__name__)

# Above this many blobs, one listing of the blob folder (1000 keys per request on S3) beats
# 16 parallel HEADs. Measured on moto (median of 3): a store of 200 / 2000 blobs, an env of
# 30 blobs: listing 0.70 / 0.98 s, HEADs 1.17 / 0.19 s; of 120 blobs: listing 0.89 / 1.59 s,
# HEADs 3.06 / 3.32 s. HEADs grow with the env, a listing with the store: a store of very many
# blobs may prefer ENVSHIP_STORE_EXISTS=head. Local filesystems always list.
LIST_ABOVE = 48
HEADS_ENV = "ENVSHIP_STORE_HEADS"  # parallel existence checks (HEAD requests)
MODE_ENV = "ENVSHIP_STORE_EXISTS"  # "list" | "head": override the choice
_HEADS = 16


def _heads() -> int:
    raw = os.environ.get(HEADS_ENV, "")
    return max(1, int(raw)) if raw.isdigit() else _HEADS


def blob_present(io: StoreIO, digest: str, size: int) -> bool:
    """The blob is there with the right size (a wrong-size object counts as missing)."""
    return io.size(blob(digest), f"blob {digest}") == size


def listed_blobs(io: StoreIO) -> dict[str, int | None]:
    """digest -> size of every blob in the store: one listing."""
    out: dict[str, int | None] = {}
    for entry in io.entries(BLOBS):
        hex_ = blob_name_hex(entry.name)
        if hex_ is not None:
            out[f"sha256:{hex_}"] = entry.size
    return out


def existing_blobs(
    io: StoreIO, layers: Sequence[LayerRef], *, mode: str | None = None
) -> set[str]:
    """Digests of *layers* the store holds with the right size (a wrong-size object counts as
    missing: it gets replaced). *mode*: ``"list"`` / ``"head"``; default chosen by count."""
    if not layers:
        return set()
    if mode is None:
        mode = os.environ.get(MODE_ENV, "").strip().lower() or None
    if mode is None:
        mode = "list" if io.caps.local or len(layers) > LIST_ABOVE else "head"
    if mode == "list":
        sizes = listed_blobs(io)
        found = {lay.digest for lay in layers if sizes.get(lay.digest) == lay.size}
        log.debug("listing: %d of %d blobs already in %s (%d listed)", len(found),
                  len(layers), io.url, len(sizes))
        return found
    with ThreadPoolExecutor(max_workers=min(_heads(), len(layers))) as pool:
        flags = list(pool.map(lambda lay: blob_present(io, lay.digest, lay.size), layers))
    return {lay.digest for lay, ok in zip(layers, flags, strict=True) if ok}
