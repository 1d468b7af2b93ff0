"""Stdlib-only probe run by the target interpreter (``python -I probe.py``): JSON on stdout."""

# This file is executed by *another* interpreter (any CPython >= 3.8 with importlib.metadata);
# it must import only the standard library and keep to syntax every such version accepts.

from __future__ import annotations

import contextlib
import json
import os
import platform
import site
import sys
import sysconfig
from typing import Any

__all__ = ["PROBE_VERSION", "collect", "main"]

PROBE_VERSION = 1


def _platform_tag() -> str:
    """``manylinux_<glibc>_<arch>`` on glibc Linux, else the sysconfig platform as a wheel tag."""
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    if plat.startswith("linux_"):
        arch = plat[len("linux_"):]
        try:
            libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
        except (AttributeError, ValueError, OSError):
            libc = ""
        name, _, ver = libc.partition(" ")
        parts = ver.split(".")
        if name == "glibc" and len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            return f"manylinux_{parts[0]}_{parts[1]}_{arch}"
    return plat


def _abi() -> str:
    impl = sys.implementation.name
    if impl == "cpython":
        tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            tag += "t"
        return tag
    return (sys.implementation.cache_tag or impl).replace("-", "_").replace(".", "_")


def _site_dirs() -> list[str]:
    seen: list[str] = []
    candidates: list[str] = []
    with contextlib.suppress(AttributeError):  # very old virtualenv's site.py
        candidates.extend(site.getsitepackages())
    candidates.extend([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    for path in candidates:
        if path and os.path.isdir(path):
            real = os.path.realpath(path)
            if real not in seen:
                seen.append(real)
    return seen


def _dist_info(dist: Any, location: str, egg_link: str | None) -> dict[str, Any]:
    path = getattr(dist, "_path", None)
    try:
        meta = dist.metadata
    except Exception:  # noqa: BLE001 - unreadable METADATA is reported by the caller
        meta = None
    path = os.path.realpath(str(path)) if path is not None else None
    if dist.read_text("RECORD") is not None:
        record = "RECORD"
    elif dist.read_text("installed-files.txt") is not None:
        record = "installed-files.txt"
    else:
        record = None
    files = None
    if record is not None:
        files = []
        for f in dist.files or ():
            digest = f"{f.hash.mode}={f.hash.value}" if f.hash else None
            files.append([str(f).replace(os.sep, "/"), digest, f.size])
    direct_url = None
    text = dist.read_text("direct_url.json")
    if text:
        try:
            direct_url = json.loads(text)
        except ValueError:
            direct_url = {"invalid": text[:200]}
    eps: dict[str, dict[str, str]] = {}
    for ep in dist.entry_points:
        if ep.group in ("console_scripts", "gui_scripts"):
            eps.setdefault(ep.group, {})[ep.name] = ep.value
    return {
        "name": meta.get("Name") if meta is not None else None,
        "version": meta.get("Version") if meta is not None else None,
        "path": path,
        "location": location,
        "record": record,
        "files": files,
        "direct_url": direct_url,
        "entry_points": eps,
        "egg_link": egg_link,
    }


def collect() -> dict[str, Any]:
    """Everything envship needs to know about the running interpreter and its site-packages."""
    import importlib.metadata as md

    site_dirs = _site_dirs()
    dists: list[dict[str, Any]] = []
    seen: set[str] = set()
    for sp in site_dirs:
        for dist in md.distributions(path=[sp]):
            dists.append(_dist_info(dist, sp, None))
    for d in dists:
        seen.add((d["name"] or "").lower().replace("_", "-").replace(".", "-"))
    # Legacy `setup.py develop`: <name>.egg-link names the checkout holding <name>.egg-info.
    for sp in site_dirs:
        for entry in sorted(os.listdir(sp)):
            if not entry.endswith(".egg-link"):
                continue
            link = os.path.join(sp, entry)
            with open(link, encoding="utf-8") as fh:
                target = fh.readline().strip()
            target = os.path.realpath(os.path.join(sp, target))
            for dist in md.distributions(path=[target]):
                meta: Any = dist.metadata
                key = (meta.get("Name") or "").lower().replace("_", "-").replace(".", "-")
                if key not in seen:
                    seen.add(key)
                    dists.append(_dist_info(dist, target, link))
    pth = []
    for sp in site_dirs:
        for entry in sorted(os.listdir(sp)):
            if entry.endswith(".pth"):
                full = os.path.join(sp, entry)
                with open(full, encoding="utf-8", errors="replace") as fh:
                    pth.append({"path": full, "lines": fh.read().splitlines()})
    return {
        "probe": PROBE_VERSION,
        "executable": sys.executable,
        "prefix": os.path.realpath(sys.prefix),
        "base_prefix": os.path.realpath(sys.base_prefix),
        "implementation": sys.implementation.name,
        "version": platform.python_version(),
        "abi": _abi(),
        "cache_tag": sys.implementation.cache_tag,
        "platform": _platform_tag(),
        "site_packages": site_dirs,
        "stdlib": os.path.realpath(sysconfig.get_path("stdlib")),
        "platstdlib": os.path.realpath(sysconfig.get_path("platstdlib")),
        "scripts": os.path.realpath(sysconfig.get_path("scripts")),
        "ldlibrary": sysconfig.get_config_var("LDLIBRARY") or "",
        "libdir": os.path.realpath(sysconfig.get_config_var("LIBDIR") or sys.base_prefix),
        "distributions": dists,
        "pth": pth,
    }


def main() -> int:
    sys.stdout.write(json.dumps(collect(), sort_keys=True))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
