"""Plays YARN for the migration benchmark (there is no YARN here): lays out a skein spec's
files in a fresh container directory as YARN's localizer would (FILE resources copied,
ARCHIVE resources unpacked under their name; files made r-x as YARN does) and runs each
service's script there.

The container's environment has none of the user's venv: PATH is NODE_PATH (the node's
plain Python) plus the system's tools, HOME is the container. Writes what it localized and
the exit code to NO_YARN (a JSON file) for the benchmark."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["run"]


def _local(source: str) -> Path:
    parts = urlsplit(source)
    if parts.scheme not in ("", "file"):
        raise SystemExit(f"no_yarn: cannot localize {source}: only local files here")
    return Path(unquote(parts.path))


def _localize(files: dict[str, dict[str, Any]], container: Path) -> list[dict[str, Any]]:
    placed = []
    for name, res in files.items():
        src = _local(str(res["source"]))
        dest = container / name
        if res["type"] == "ARCHIVE":
            if zipfile.is_zipfile(src):
                with zipfile.ZipFile(src) as zf:
                    zf.extractall(dest)
            else:
                with tarfile.open(src) as tar:
                    tar.extractall(dest, filter="tar")
        else:
            shutil.copy2(src, dest)
            # YARN's localizer (FSDownload) leaves files r-x: 0555 public, 0500 otherwise
            dest.chmod(0o555 if res.get("visibility") == "PUBLIC" else 0o500)
        placed.append({"name": name, "source": str(src), "type": res["type"],
                       "size": src.stat().st_size})
    return placed


def run(spec: Any) -> int:
    """Run every service of *spec* (a ``skein.ApplicationSpec``) once; its exit code."""
    report_path = Path(os.environ["NO_YARN"])
    root = report_path.parent / "containers"
    report: dict[str, Any] = {"services": {}}
    status = 0
    for name, service in spec.to_dict()["services"].items():
        container = root / f"{name}_container_01"
        shutil.rmtree(container, ignore_errors=True)
        container.mkdir(parents=True)
        start = time.perf_counter()
        placed = _localize(service.get("files") or {}, container)
        env = {"PATH": f"{os.environ['NODE_PATH']}{os.pathsep}/usr/bin:/bin",
               "HOME": str(container), "LANG": "C.UTF-8", **(service.get("env") or {})}
        proc = subprocess.run(["bash", "-c", service["script"]], cwd=container, env=env,
                              capture_output=True, text=True)
        print(proc.stdout, end="", flush=True)
        print(proc.stderr, end="", flush=True)
        report["services"][name] = {"files": placed, "rc": proc.returncode,
                                    "seconds": round(time.perf_counter() - start, 3)}
        status = status or proc.returncode
    report_path.write_text(json.dumps(report, indent=1))
    return status
