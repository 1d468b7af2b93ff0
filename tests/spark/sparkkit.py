"""Helpers for the Spark tests: hand-made envs, job venvs, running driver programs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path

from envship.env import Env
from envship.manifest import LayerRef, Manifest, PythonInfo
from envship.store import open_store

HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "RESULT "


def layer_blob(files: Mapping[str, bytes], dest: Path) -> tuple[Path, str]:
    """A layer tar.gz holding *files* (path inside the layer -> bytes); returns (path, digest)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(files[name]), 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    data = out.getvalue()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / (digest.split(":")[1] + ".tar.gz")
    path.write_bytes(data)
    return path, digest


def handmade_env(
    store_url: str,
    layers: Mapping[str, Mapping[str, bytes]],
    work: Path,
    storage_options: Mapping[str, object] | None = None,
    version: str | None = None,
) -> Env:
    """Publish an env whose layers (kind -> files) are written by hand, for this interpreter."""
    refs, blobs = [], {}
    for kind, files in layers.items():
        path, digest = layer_blob(files, work / "blobs")
        refs.append(LayerRef(kind, digest, path.stat().st_size, len(files)))
        blobs[digest] = path
    v = sys.version_info
    manifest = Manifest(
        PythonInfo("cpython", version or f"{v.major}.{v.minor}.{v.micro}",
                   "cp" + (version or f"{v.major}.{v.minor}").replace(".", "")[:3],
                   "linux_x86_64"),
        tuple(refs),
    )
    store = open_store(store_url, dict(storage_options or {}))
    result = store.publish(manifest, blobs)
    return Env(result.env_uri, manifest, store.url, dict(store.storage_options))


def parse_result(stdout: str) -> dict[str, object]:
    """The JSON a job printed on its `RESULT ` line."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])  # type: ignore[no-any-return]
    raise AssertionError(f"no {RESULT_PREFIX!r} line in the job's output:\n{stdout[-3000:]}")
