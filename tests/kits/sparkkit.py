"""Helpers for the Spark tests: hand-made envs, job venvs, running driver programs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from envship.env import Env
from envship.packing.manifest import LayerRef, Manifest, PythonInfo
from envship.store import open_store

from .support import MotoServer

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


def s3_handmade_env(moto: MotoServer, layers: Mapping[str, Mapping[str, bytes]], work: Path
                    ) -> tuple[Env, dict[str, object]]:
    """:func:`handmade_env` published to a fresh bucket of *moto*; (env, storage options)."""
    options = moto.storage_options()
    return handmade_env(f"s3://{moto.new_bucket()}/store", layers, work, options), options


def parse_result(stdout: str) -> dict[str, object]:
    """The JSON a job printed on its `RESULT ` line."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])  # type: ignore[no-any-return]
    raise AssertionError(f"no {RESULT_PREFIX!r} line in the job's output:\n{stdout[-3000:]}")


def job_venv(path: Path, project: Path) -> Path:
    """The user's venv: numpy, pandas, pyarrow, pyspark (driver side), envship, editable
    *project*. envship is installed from this checkout, rebuilt (not a stale cached wheel)."""
    import pyspark

    from kits.support import run, uv_bin

    repo = HERE.parent.parent
    run([uv_bin(), "venv", "-q", "-p", sys.executable, str(path)])
    py = path / "bin" / "python"
    args = ["numpy", "pandas", "pyarrow", f"pyspark=={pyspark.__version__}", str(repo),
            "-e", str(project)]
    install = [uv_bin(), "pip", "install", "-q", "-p", str(py), "--link-mode", "hardlink"]
    # From uv's cache when it has everything (seconds), else from the index (minutes).
    offline = subprocess.run([*install, "--offline", *args], capture_output=True, text=True)
    if offline.returncode != 0:
        run([*install, *args])
    # This checkout's envship, rebuilt: uv may hold a wheel built from an older tree.
    run([*install, "--no-deps", "--reinstall-package", "envship", "--refresh-package",
         "envship", str(repo)])
    return py


class CountingStore:
    """Serves a store directory over HTTP on 127.0.0.1 and records every GET (time, path)."""

    def __init__(self, root: Path) -> None:
        import functools
        import http.server
        import threading

        self.gets: list[tuple[float, str]] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                import time

                outer.gets.append((time.time(), self.path))
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def blob_gets(self, start: float = 0.0, end: float = float("inf")) -> list[str]:
        return [p for t, p in self.gets if start <= t <= end and p.startswith("/blobs/")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class JobEnv:
    python: Path  # the user's venv interpreter: the driver runs here
    project: Path  # editable `mylib` installed in it (tests that edit it restore it)
    job_dir: Path  # spark_job.py, jobmod.py, spark_driver.py

    @property
    def envship(self) -> str:
        return str(self.python.parent / "envship")
