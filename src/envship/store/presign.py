"""Presigned manifests: layers carry HTTPS URLs, so nodes need neither credentials nor s3fs."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError
from ..node.formats import presigned_key
from ..packing.manifest import Manifest
from .fetch import read_manifest
from .io import StoreIO
from .io.location import blob

__all__ = ["PresignResult", "presign"]

@dataclass(frozen=True)
class PresignResult:
    env_id: str
    manifest: Manifest  # layers carry `url`; same env id
    location: str  # where the presigned manifest was written (store URL or local path)
    url: str  # what to hand to nodes: a presigned URL of it, or the local path given
    expires: int


MAX_EXPIRES = 7 * 24 * 3600  # SigV4 (S3) and V4 signing (GCS) refuse longer


def presign(io: StoreIO, env_id: str, *, expires: int = 3600, output: Path | None = None
            ) -> PresignResult:
    """Write the env's presigned manifest (or *output*) whose layers carry presigned URLs."""
    if expires <= 0:
        raise StoreError(f"--expires must be a positive number of seconds, not {expires}")
    if expires > MAX_EXPIRES and io.location.protocol in ("s3", "s3a", "gs", "gcs"):
        raise StoreError(f"--expires {expires}: S3 and GCS sign URLs for at most 7 days "
                         f"({MAX_EXPIRES} s); presign again before they run out")
    manifest = read_manifest(io, env_id)
    signed = dataclasses.replace(
        manifest,
        layers=tuple(
            dataclasses.replace(lay, url=io.sign(blob(lay.digest), expires))
            for lay in manifest.layers
        ),
    )
    data = signed.to_json()
    if output is not None:
        output = Path(os.path.abspath(Path(output).expanduser()))
        name = presigned_key(env_id)[-1]  # nodes know a presigned manifest by this name
        if output.is_dir():
            output = output / name
        elif output.name != name:
            raise StoreError(f"-o {output}: name the file {name} (or give a directory): nodes "
                             "recognise a presigned manifest by its name")
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(output)
        return PresignResult(env_id, signed, str(output), str(output), expires)
    key = presigned_key(env_id)
    io.write(key, data, "presigned manifest")
    return PresignResult(env_id, signed, io.url_of(key), io.sign(key, expires), expires)
