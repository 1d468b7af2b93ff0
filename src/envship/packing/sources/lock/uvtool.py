"""Find and run uv; turn its resolver errors into messages that name the package and platform."""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
from collections.abc import Sequence

from ....errors import PackError

__all__ = ["BuildError", "uv_bin", "uv_version", "run_uv", "explain_uv_error"]

log = logging.getLogger(__name__)


class BuildError(PackError):
    """A lock could not be built for the target (no wheel, unknown package, uv failed)."""


@functools.lru_cache(maxsize=1)
def uv_bin() -> str:
    """The uv binary: the ``uv`` Python package's, else the one on PATH."""
    try:
        import uv

        path = str(uv.find_uv_bin())
        if path:
            return path
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise BuildError("uv is not installed: `pip install uv` (envship builds locks with it).")


@functools.lru_cache(maxsize=1)
def uv_version() -> str:
    proc = subprocess.run([uv_bin(), "--version"], capture_output=True, text=True)
    return proc.stdout.strip() or "uv (unknown version)"


_NO_WHEEL = re.compile(
    r"Because (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:(?P<op>==|===)(?P<ver>[^\s,]+))? "
    r"(?P<why>has no (?:usable )?wheels[^,]*|has no wheels with a matching [^,]*"
    r"|was not found in the package registry|was not found in the provided package locations)"
)


def explain_uv_error(stderr: str, platform: str, python_version: str) -> str:
    """One or two lines naming what uv could not find, for which platform and Python."""
    m = _NO_WHEEL.search(stderr)
    if m:
        name, ver, why = m.group("name"), m.group("ver"), m.group("why")
        why = why.split(" and you require", 1)[0].split(" and ", 1)[0]
        what = f"{name} {ver}" if ver else name
        if "not found" in why:
            return (f"{what}: {why}; check the name, or the index options of the lock "
                    "(--index-url / --find-links).")
        return (f"no wheel of {what} for {platform} / CPython {python_version} ({why}); "
                "pick a version of it that publishes such a wheel, or build one and add it "
                "with --find-links.")
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if ln.startswith(("error", "cause", "Caused by", "×", "╰"))]
    return " / ".join((useful or lines)[-3:]) or "uv failed without a message"


def run_uv(args: Sequence[str], *, platform: str, python_version: str, what: str) -> str:
    """Run ``uv ARGS``; stdout on success, BuildError with an explained message otherwise."""
    cmd = [uv_bin(), *args]
    log.debug("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed: " + explain_uv_error(proc.stderr, platform,
                                                              python_version))
    return proc.stdout
