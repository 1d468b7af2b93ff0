"""Build a single-file, reproducible PEX of a lock (+ the project's code) for a target."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.tags import compatible_tags, cpython_tags

from ..errors import PackError
from .sources.lock.lockfile import read_lock
from .sources.lock.stage import CodeArg, builders_home, resolve_code
from .sources.lock.target import Target, arch_of, resolve_target
from .sources.lock.uvbuild import resolve_set
from .sources.lock.uvtool import BuildError
from .sources.sourcetree import SourceWalker, root_entries

__all__ = ["FORMATS", "PEX_PIP_VERSION", "build_pex", "build_pex_for", "complete_platform",
           "pex_spark_conf"]

FORMATS = ("layers", "pex", "both")  # what `pack --format` writes

log = logging.getLogger(__name__)

# pex's vendored pip predates manylinux_2_28 wheels for some projects; use a newer one.
PEX_PIP_VERSION = os.environ.get("ENVSHIP_PEX_PIP_VERSION", "25.2")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")


def _platforms(tag: str) -> list[str]:
    """*tag* and every older platform a wheel for it may be tagged with."""
    m = _MANYLINUX.match(tag)
    if not m:
        return [tag]
    major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
    out = [f"manylinux_{major}_{v}_{arch}" for v in range(minor, 16, -1)]
    out.append(f"manylinux2014_{arch}")
    if arch in ("x86_64", "i686"):
        out += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return [*out, f"linux_{arch}"]


def complete_platform(target: Target) -> dict[str, Any]:
    """A pex ``--complete-platform`` description of *target* (markers + compatible tags)."""
    major, minor = (int(x) for x in target.python_version.split("."))
    plats = _platforms(target.python.platform)
    tags = [*cpython_tags((major, minor), [target.python.abi, "abi3", "none"], plats),
            *compatible_tags((major, minor), f"cp{major}{minor}", plats)]
    full = target.python.version if target.python.version.count(".") == 2 else (
        f"{target.python_version}.0")
    is_linux = "linux" in target.python.platform
    return {
        "marker_environment": {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": "posix" if not target.python.platform.startswith("win") else "nt",
            "platform_machine": arch_of(target.python.platform),
            "platform_python_implementation": "CPython",
            "platform_system": "Linux" if is_linux else "Darwin",
            "python_full_version": full,
            "python_version": target.python_version,
            "sys_platform": "linux" if is_linux else "darwin",
        },
        "compatible_tags": [str(t) for t in tags],
    }


def _strip_hash(line: str) -> str:
    return " ".join(p for p in line.split() if not p.startswith("--hash"))


def _copy_code(code: CodeArg, dest: Path) -> bool:
    project = resolve_code(code)
    if project is None:
        return False
    from .sources.editables import SourceRoot

    root = SourceRoot("path", str(project.source_dir), top_level=project.top_level)
    for arc, src in root_entries(SourceWalker(), root):
        rel = arc.split("/", 1)[1]  # drop "site-packages/"
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
    return True


def build_pex(
    requirements: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    python_version: str | None = None,
    platform: str | None = None,
    strict: bool = False,
    code: CodeArg = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a PEX holding the lock's distributions (and the project's code) to *output*.

    The same resolution as the layers is used (``--intransitive``: nothing is resolved
    again); pex writes reproducible zips (fixed timestamps, sorted entries, no bytecode), so
    the same lock gives the same PEX bytes. It runs with a ``python3.X`` found on ``PATH``.
    """
    try:
        import pex  # noqa: F401  (run below as `python -m pex`)
    except ImportError:
        raise BuildError("building a PEX needs the pex package, which is not installed: "
                         "`pip install 'envship[pex]'` (or `pip install pex`)") from None
    target = resolve_target(python_version, platform)
    pinned = read_lock(requirements)
    lines = resolve_set(pinned, target, strict=strict,
                        cache_root=builders_home(cache_dir) / "resolved")
    out = Path(output).expanduser().absolute()
    with tempfile.TemporaryDirectory(prefix="envship-pex-") as tmp_dir:
        tmp = Path(tmp_dir)
        req = tmp / "requirements.txt"
        # pex's pip checks hashes per file it picks; the resolution above already did
        req.write_text("".join(f"{ln}\n" for ln in (*pinned.options,
                                                      *map(_strip_hash, lines))))
        plat = tmp / "platform.json"
        plat.write_text(json.dumps(complete_platform(target)))
        cmd = [sys.executable, "-m", "pex", "-r", str(req), "--intransitive", "--no-build",
               "--pip-version", PEX_PIP_VERSION, "--complete-platform", str(plat),
               "--python-shebang", f"/usr/bin/env python{target.python_version}",
               "--no-compile", "--no-use-system-time", "--no-emit-warnings",
               # Spark hands Python workers pyspark through PYTHONPATH, which a PEX scrubs
               # unless told to fall back to it (its own packages still come first).
               "--inherit-path=fallback"]
        if _copy_code(code, tmp / "code"):
            cmd += ["-D", str(tmp / "code")]
        partial = out.with_name(f".{out.name}.partial")
        cmd += ["-o", str(partial)]
        log.info("building PEX: %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            tail = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln or "rror:" in ln]
            raise BuildError(
                f"pex could not build {out.name} for {target.python.platform} / CPython "
                f"{target.python_version}: " + " / ".join((tail or proc.stderr.splitlines())[-3:])
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, out)
    return out


def pex_spark_conf(pex_url: str) -> dict[str, str]:
    """Spark confs that run PySpark executors with a PEX shipped in ``spark.files``.

    Outside spark-submit (an in-process ``SparkSession.builder``) PySpark takes the executors'
    Python from ``$PYSPARK_PYTHON`` only: use :func:`envship.spark.configure`, which sets it.
    """
    name = pex_url.rstrip("/").rsplit("/", 1)[-1]
    return {
        "spark.files": pex_url,
        "spark.pyspark.python": f"./{name}",
        "spark.executorEnv.PEX_ROOT": "./.pex",
        "spark.executorEnv.PEX_INHERIT_PATH": "fallback",
    }


def build_pex_for(fmt: str, output: Path, opts: Mapping[str, Any]) -> Path | None:
    """Write ``OUTPUT/env.pex`` when *fmt* asks for a PEX (lock builds only); its path.
    *opts*: the ``pack()`` keyword arguments (``requirements`` and the lock options)."""
    if fmt not in FORMATS:
        raise PackError(f"--format {fmt}: expected one of {', '.join(FORMATS)}.")
    if fmt == "layers":
        return None
    if "requirements" not in opts:
        raise PackError(f"--format {fmt}: needs --requirements (a PEX is built from a lock).")
    keys = ("python_version", "platform", "strict", "code")
    return build_pex(opts["requirements"], Path(output) / "env.pex",
                     **{k: opts[k] for k in keys if k in opts})
