"""Read a lock (requirements.txt, pylock.toml, uv.lock) into a normalised set of pinned lines."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ....errors import PackError
from .tomlfile import load_toml
from .uvtool import uv_bin

__all__ = ["PinnedSet", "read_lock", "lock_kind"]

log = logging.getLogger(__name__)

# Options of a requirements file passed on to uv as they are (where to find wheels).
_PASS_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--no-index",
                 "--default-index", "--index")


@dataclass(frozen=True)
class PinnedSet:
    """Requirement lines ready for ``uv pip install --no-deps -r``, in a canonical order."""

    source: str  # the lock file as given
    kind: str  # "requirements" | "pylock" | "uv.lock"
    lines: tuple[str, ...]  # sorted requirement lines (with markers and --hash options)
    options: tuple[str, ...]  # index options, in file order
    unpinned: tuple[str, ...]  # requirements without an exact version (names)
    complete: bool  # a lock format that lists every distribution (no resolution needed)

    def text(self) -> str:
        return "".join(f"{line}\n" for line in (*self.options, *self.lines))

    @property
    def pinned(self) -> bool:
        return not self.unpinned


def lock_kind(path: Path) -> str:
    name = path.name
    if name == "uv.lock":
        return "uv.lock"
    if name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        return "pylock"
    return "requirements"


def read_lock(path: str | os.PathLike[str]) -> PinnedSet:
    """Read *path* by its name: ``uv.lock``, ``pylock[.NAME].toml``, else a requirements file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise PackError(f"--requirements {p}: no such file; give a requirements.txt, "
                        "pylock.toml or uv.lock.")
    kind = lock_kind(p)
    if kind == "uv.lock":
        return _from_uv_lock(p)
    if kind == "pylock":
        return _from_pylock(p)
    return _from_requirements(p, kind="requirements", complete=False)


# -- requirements.txt ---------------------------------------------------------------------------
def _logical_lines(path: Path, seen: set[Path]) -> list[tuple[str, Path]]:
    """Lines with continuations joined, comments dropped, nested ``-r`` files inlined."""
    real = path.resolve()
    if real in seen:
        return []
    seen.add(real)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackError(f"cannot read requirements file {path}: {exc}") from exc
    out: list[tuple[str, Path]] = []
    buf = ""
    for line in raw.splitlines():
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = buf + line
        buf = ""
        if line.lstrip().startswith("#"):
            continue
        line = line.split(" #", 1)[0].strip()
        if not line:
            continue
        for flag in ("-r ", "--requirement ", "-r", "--requirement="):
            if line.startswith(flag):
                nested = (path.parent / line[len(flag):].strip()).resolve()
                out += _logical_lines(nested, seen)
                break
        else:
            out.append((line, path))
    return out


_HASH = re.compile(r"\s--hash[=\s]\s*(\S+)")


def _split_hashes(line: str) -> tuple[str, list[str]]:
    """(the requirement without its ``--hash`` options, the sorted unique hashes)."""
    hashes = sorted(set(_HASH.findall(" " + line)))
    return _HASH.sub("", " " + line).strip(), hashes


def _is_pinned(req: Requirement) -> bool:
    if req.url:
        return True
    specs = list(req.specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def _from_requirements(path: Path, *, kind: str, complete: bool) -> PinnedSet:
    lines: dict[str, str] = {}
    options: list[str] = []
    unpinned: list[str] = []
    for line, where in _logical_lines(path, set()):
        if line.startswith("-"):
            flag = line.split("=", 1)[0].split()[0]
            if flag in _PASS_OPTIONS:
                options.append(line)
                continue
            if flag in ("-e", "--editable"):
                raise PackError(
                    f"{where}: editable requirement {line!r} cannot be built for another "
                    "platform; leave it out and pass the project with --code PATH."
                )
            raise PackError(f"{where}: option {flag} is not supported in a lock; remove it.")
        text, hashes = _split_hashes(line)
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise PackError(f"{where}: not a requirement: {line!r} ({exc})") from exc
        if not _is_pinned(req):
            unpinned.append(req.name)
        out = str(req) + "".join(f" --hash={h}" for h in hashes)
        key = f"{req.name.lower()}|{req.marker or ''}"
        lines[key] = out
    return PinnedSet(str(path), kind, tuple(sorted(lines.values(), key=str.lower)),
                     tuple(options), tuple(sorted(set(unpinned))), complete)


# -- pylock.toml (PEP 751) ----------------------------------------------------------------------


def _from_pylock(path: Path) -> PinnedSet:
    data = load_toml(path)
    if not str(data.get("lock-version", "")).startswith("1"):
        raise PackError(f"{path}: lock-version {data.get('lock-version')!r} is not 1.x (PEP 751).")
    lines: list[str] = []
    for pkg in data.get("packages", []):
        name = pkg.get("name")
        if not isinstance(name, str):
            raise PackError(f"{path}: a [[packages]] entry has no name.")
        marker = f" ; {pkg['marker']}" if pkg.get("marker") else ""
        hashes: set[str] = set()
        for wheel in pkg.get("wheels", []) or []:
            for algo, value in (wheel.get("hashes") or {}).items():
                hashes.add(f"{algo}:{value}")
        sdist = pkg.get("sdist") or {}
        for algo, value in (sdist.get("hashes") or {}).items():
            hashes.add(f"{algo}:{value}")
        if "version" in pkg:
            spec = f"{name}=={pkg['version']}"
        elif "archive" in pkg and pkg["archive"].get("url"):
            spec = f"{name} @ {pkg['archive']['url']}"
        elif "vcs" in pkg and pkg["vcs"].get("url"):
            vcs = pkg["vcs"]
            spec = f"{name} @ {vcs.get('type', 'git')}+{vcs['url']}@{vcs.get('commit-id', '')}"
        else:
            raise PackError(
                f"{path}: package {name} has no version, archive or VCS source (a local "
                "directory?); build it into the code layer with --code PATH instead."
            )
        lines.append(spec + marker + "".join(f" --hash={h}" for h in sorted(hashes)))
    if not lines:
        raise PackError(f"{path}: no [[packages]] in the lock.")
    return PinnedSet(str(path), "pylock", tuple(sorted(lines, key=str.lower)), (), (), True)


# -- uv.lock ------------------------------------------------------------------------------------
def _from_uv_lock(path: Path) -> PinnedSet:
    project = path.parent
    if not (project / "pyproject.toml").is_file():
        raise PackError(f"{path}: no pyproject.toml next to it; uv.lock belongs to a project.")
    cmd = [uv_bin(), "export", "--format", "requirements-txt", "--frozen", "--no-header",
           "--no-annotate", "--no-emit-project", "--no-emit-workspace", "--no-dev",
           "--directory", str(project)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise PackError(f"uv export of {path} failed: {' / '.join(tail)}")
    # parsed by the requirements reader so hashes and markers are normalised the same way
    with tempfile.TemporaryDirectory(prefix="envship-uvlock-") as tmp_dir:
        tmp = Path(tmp_dir) / "requirements.txt"
        tmp.write_text(proc.stdout, encoding="utf-8")
        pinned = _from_requirements(tmp, kind="uv.lock", complete=True)
    return PinnedSet(str(path), "uv.lock", pinned.lines, pinned.options, pinned.unpinned, True)
