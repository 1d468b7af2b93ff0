"""Reuse the last probe answer of an interpreter while nothing it describes has changed on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["load_probe", "save_probe"]

log = logging.getLogger(__name__)

_VERSION = 1


def _watched(data: Mapping[str, Any]) -> list[str]:
    """Paths whose stat changes whenever a distribution is installed, removed or upgraded.

    Installing or removing anything adds or removes entries in site-packages (the directory's
    mtime changes); reinstalling rewrites RECORD; .pth and egg-link edits change those files.
    """
    paths = [os.path.realpath(str(data["executable"])),
             os.path.join(str(data["prefix"]), "pyvenv.cfg")]
    paths += [str(p) for p in data["site_packages"]]
    for dist in data["distributions"]:
        if dist.get("path"):
            meta = str(dist["path"])
            paths += [meta, os.path.join(meta, dist.get("record") or "RECORD")]
        if dist.get("egg_link"):
            paths.append(str(dist["egg_link"]))
    paths += [str(p["path"]) for p in data["pth"]]
    return paths


def _stamp(paths: list[str]) -> list[Any]:
    out: list[Any] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append([path, None])
        else:
            out.append([path, st.st_mtime_ns, st.st_size, st.st_ino])
    return out


def _entry(cache_dir: Path, interpreter: str) -> Path:
    key = hashlib.sha256(os.path.abspath(interpreter).encode()).hexdigest()
    return cache_dir / f"{key}.json"


def load_probe(cache_dir: Path, interpreter: str) -> dict[str, Any] | None:
    """The cached probe answer for *interpreter*, if every watched path is unchanged."""
    try:
        obj = json.loads(_entry(cache_dir, interpreter).read_text())
        if obj.get("version") != _VERSION:
            return None
        data: dict[str, Any] = obj["data"]
        if _stamp(_watched(data)) != obj["stamp"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    log.info("reusing the probe answer of %s (its site-packages did not change)", interpreter)
    return data


def save_probe(cache_dir: Path, interpreter: str, data: Mapping[str, Any]) -> None:
    """Remember *data* for *interpreter*; failures only cost speed next time."""
    obj = {"version": _VERSION, "stamp": _stamp(_watched(data)), "data": data}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=cache_dir)
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh)
        os.replace(tmp, _entry(cache_dir, interpreter))
    except OSError as exc:
        log.warning("cannot write probe cache in %s: %s", cache_dir, exc)
