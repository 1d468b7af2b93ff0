"""The target a lock is built for: Python version, ABI and platform tag (wheel and uv forms)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from ....errors import PackError
from ...manifest import PythonInfo

__all__ = ["Target", "resolve_target", "host_platform_tag", "uv_platform", "arch_of"]

# The newest manylinux glibc minor uv knows by name (`x86_64-manylinux_2_40`).
_UV_MANYLINUX_MAX = 40
_UV_MANYLINUX_MIN = 17
_ARCHES = ("x86_64", "aarch64")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(x86_64|aarch64)$")
_OTHER = {
    "musllinux_1_2_x86_64": "x86_64-unknown-linux-musl",
    "musllinux_1_2_aarch64": "aarch64-unknown-linux-musl",
    "linux_x86_64": "x86_64-unknown-linux-gnu",
    "linux_aarch64": "aarch64-unknown-linux-gnu",
    "macosx_11_0_arm64": "aarch64-apple-darwin",
    "macosx_10_12_x86_64": "x86_64-apple-darwin",
    "win_amd64": "x86_64-pc-windows-msvc",
    "win_arm64": "aarch64-pc-windows-msvc",
}
_VERSION = re.compile(r"^3\.(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class Target:
    """What the env is built for; ``python`` goes into the manifest as is."""

    python: PythonInfo
    uv_platform: str  # e.g. "aarch64-manylinux_2_28"
    python_version: str  # "3.12" (what uv and pex are told)

    @property
    def pex_platform(self) -> str:
        """pex's abbreviated platform: ``<tag>-cp-312-cp312``."""
        nodot = self.python_version.replace(".", "")
        return f"{self.python.platform}-cp-{nodot}-cp{nodot}"


def host_platform_tag() -> str:
    """This machine's platform tag as the env snapshot writes it (``manylinux_2_36_x86_64``)."""
    from ..probe import _platform_tag  # the probe's own rule, so both paths agree

    return _platform_tag()


def uv_platform(tag: str) -> str:
    """uv's ``--python-platform`` name for wheel platform *tag*; PackError if uv has none."""
    tag = tag.strip()
    legacy = re.match(r"^(manylinux2014|manylinux_2_17)_(x86_64|aarch64)$", tag)
    if legacy:
        return f"{legacy.group(2)}-manylinux_2_17"
    m = _MANYLINUX.match(tag)
    if m:
        major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
        if major == 2 and _UV_MANYLINUX_MIN <= minor <= _UV_MANYLINUX_MAX:
            return f"{arch}-manylinux_2_{minor}"
    if tag in _OTHER:
        return _OTHER[tag]
    mac = re.match(r"^macosx_\d+_\d+_(arm64|x86_64|universal2)$", tag)
    if mac:  # uv targets the macOS version in $MACOSX_DEPLOYMENT_TARGET (default 13.0)
        return "x86_64-apple-darwin" if mac.group(1) == "x86_64" else "aarch64-apple-darwin"
    known = ", ".join(
        [f"manylinux_2_{{{_UV_MANYLINUX_MIN}..{_UV_MANYLINUX_MAX}}}_{{x86_64,aarch64}}"]
        + sorted(_OTHER)
    )
    raise PackError(f"--platform {tag}: not a platform envship can build for; use one of {known}.")


def _host_default_tag() -> str:
    tag = host_platform_tag()
    m = _MANYLINUX.match(tag)
    if m and int(m.group(2)) > _UV_MANYLINUX_MAX:  # newer glibc than uv names: cap it
        return f"manylinux_2_{_UV_MANYLINUX_MAX}_{m.group(3)}"
    return tag


def resolve_target(python_version: str | None, platform: str | None) -> Target:
    """The build target: defaults to this interpreter's version and this machine's platform."""
    if python_version is None:
        version = ".".join(str(v) for v in sys.version_info[:3])
        mm = f"{sys.version_info[0]}.{sys.version_info[1]}"
    else:
        m = _VERSION.match(python_version.strip())
        if not m:
            raise PackError(
                f"--python-version {python_version!r}: expected 3.X or 3.X.Y (e.g. 3.12)."
            )
        version = python_version.strip()
        mm = f"3.{m.group(1)}"
    tag = platform.strip() if platform else _host_default_tag()
    if tag.startswith("manylinux2014_"):
        tag = "manylinux_2_17_" + tag[len("manylinux2014_"):]
    uv_plat = uv_platform(tag)
    abi = "cp" + mm.replace(".", "")
    cache_tag = "cpython-" + mm.replace(".", "")
    return Target(PythonInfo("cpython", version, abi, tag, cache_tag), uv_plat, mm)


def arch_of(tag: str) -> str:
    """The CPU architecture named by a platform tag (``x86_64``, ``aarch64``, ...)."""
    for arch in (*_ARCHES, "arm64", "amd64"):
        if tag.endswith(arch):
            return {"arm64": "aarch64", "amd64": "x86_64"}.get(arch, arch)
    return tag.rsplit("_", 1)[-1]
