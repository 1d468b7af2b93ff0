"""Snapshot: what a target environment holds, read by running the probe with its interpreter."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ...errors import SnapshotError
from ..manifest import PythonInfo
from .editables import SourceRoot, editable_roots
from .probecache import load_probe, save_probe

__all__ = [
    "RecordFile",
    "DistInfo",
    "Snapshot",
    "Target",
    "canonical_name",
    "choose_target",
    "default_cache_tag",
    "find_interpreter",
    "take_snapshot",
    "snapshot_from_probe",
]

log = logging.getLogger(__name__)

_PROBE_TIMEOUT = 120


def canonical_name(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class RecordFile(NamedTuple):
    """One installed file of a distribution (a NamedTuple: there are tens of thousands)."""

    rel: str  # the path as written in RECORD (relative to the dist's location)
    path: str  # absolute, normalised
    hash: str | None  # "sha256=…" from RECORD, None when RECORD has none


@dataclass(frozen=True)
class DistInfo:
    """An installed distribution as the snapshot sees it."""

    name: str  # PEP 503 normalised
    display_name: str
    version: str
    source: str  # index / editable / local / vcs / archive / unknown
    metadata_dir: str  # absolute *.dist-info / *.egg-info directory
    location: str  # the directory metadata_dir lives in (site-packages, or a checkout)
    files: tuple[RecordFile, ...]
    entry_points: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    roots: tuple[SourceRoot, ...] = ()  # editable installs: where the code really lives
    pointer_files: frozenset[str] = frozenset()  # .pth / finder files pointing at the checkout
    egg_link: str | None = None

    @property
    def editable(self) -> bool:
        return self.source == "editable"

    @property
    def script_names(self) -> frozenset[str]:
        return frozenset(
            n for g in ("console_scripts", "gui_scripts") for n in self.entry_points.get(g, {})
        )


@dataclass(frozen=True)
class Snapshot:
    """A target environment: interpreter facts, distributions, stray files."""

    python: PythonInfo
    executable: str
    prefix: str
    base_prefix: str
    site_packages: tuple[str, ...]
    stdlib: str
    scripts: str
    ldlibrary: str
    libdir: str
    distributions: tuple[DistInfo, ...]
    stray: tuple[str, ...]  # absolute paths of top-level site-packages entries nobody owns
    foreign_pth: tuple[str, ...] = ()  # stray .pth files (included, but may point off-env)

    def distribution(self, name: str) -> DistInfo | None:
        key = canonical_name(name)
        return next((d for d in self.distributions if d.name == key), None)


def default_cache_tag(implementation: str, version: str) -> str:
    """``sys.implementation.cache_tag`` of CPython *version* (``cpython-311``), for targets
    whose interpreter cannot be asked (lock builds) and probe answers saved without it."""
    major, _, rest = version.partition(".")
    minor = rest.partition(".")[0]
    return f"{implementation}-{major}{minor}"


def find_interpreter(python: str | os.PathLike[str] | None) -> str:
    """The interpreter to probe: given path, a venv/prefix's bin/python, or the running one."""
    if python is None:
        return sys.executable
    path = Path(python).expanduser()
    if path.is_dir():
        for cand in ("bin/python", "bin/python3", "Scripts/python.exe"):
            if (path / cand).exists():
                return str(path / cand)
        raise SnapshotError(
            f"{path} is not a virtual environment or Python prefix (no bin/python in it); "
            "pass --python with a venv directory or an interpreter path."
        )
    if not path.exists():
        raise SnapshotError(f"python {path} does not exist; pass a venv directory or interpreter.")
    return str(path)


@dataclass(frozen=True)
class Target:
    """The environment to pack and why it was chosen (shown to the user)."""

    python: str  # venv dir, prefix or interpreter, as find_interpreter() takes it
    reason: str  # "--python", "$VIRTUAL_ENV", ".venv in /work/proj", "the running interpreter"


def choose_target(
    python: str | os.PathLike[str] | None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Target:
    """The env a command line means, chosen as uv does: *python* if given, else
    ``$VIRTUAL_ENV``, else a ``.venv`` in *cwd* or a parent, else the running interpreter.

    (A tool installed in its own venv, by pipx or ``uv tool``, must not pack that venv.)
    """
    if python is not None:
        return Target(str(python), "--python")
    env = os.environ if environ is None else environ
    active = env.get("VIRTUAL_ENV")
    if active:
        if not Path(active).expanduser().is_dir():
            raise SnapshotError(
                f"VIRTUAL_ENV={active} does not exist; activate an existing venv, run "
                "`deactivate`, or pass --python."
            )
        return Target(active, "$VIRTUAL_ENV")
    here = Path(cwd if cwd is not None else os.getcwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / ".venv"
        if (candidate / "pyvenv.cfg").is_file():
            return Target(str(candidate), f".venv in {folder}")
    return Target(sys.executable, "the interpreter running envship")


def _run_probe(interpreter: str) -> dict[str, Any]:
    probe = Path(__file__).with_name("probe.py")
    try:
        proc = subprocess.run(
            [interpreter, "-I", str(probe)],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
        )
    except OSError as exc:
        raise SnapshotError(
            f"cannot run python {interpreter}: {exc.strerror or exc}; "
            "pass --python with a working interpreter or venv."
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise SnapshotError(
            f"python {interpreter} did not answer within {_PROBE_TIMEOUT}s"
        ) from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SnapshotError(
            f"python {interpreter} failed to describe its environment (exit {proc.returncode}: "
            f"{tail}); it needs Python >= 3.8."
        )
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise SnapshotError(f"python {interpreter} printed something that is not JSON") from exc
    if not isinstance(data, dict) or data.get("probe") != 1:
        raise SnapshotError(f"python {interpreter}: unexpected probe answer")
    return data


def take_snapshot(
    python: str | os.PathLike[str] | None = None, *, probe_cache: Path | None = None
) -> Snapshot:
    """Probe *python* (a venv, prefix or interpreter; default: this one) and build a Snapshot.

    With *probe_cache*, the last probe answer is reused while site-packages is unchanged.
    """
    interpreter = find_interpreter(python)
    data = load_probe(probe_cache, interpreter) if probe_cache is not None else None
    if data is None:
        data = _run_probe(interpreter)
        if probe_cache is not None:
            save_probe(probe_cache, interpreter, data)
    return snapshot_from_probe(data)


def _source(direct_url: Any, egg_link: str | None) -> str:
    if egg_link:
        return "editable"
    if not isinstance(direct_url, dict):
        return "index"
    if "dir_info" in direct_url:
        return "editable" if direct_url["dir_info"].get("editable") else "local"
    if "vcs_info" in direct_url:
        return "vcs"
    if "archive_info" in direct_url:
        return "archive"
    return "unknown"


def _dist(raw: Mapping[str, Any]) -> DistInfo:
    meta_dir = raw.get("path") or "?"
    name, version = raw.get("name"), raw.get("version")
    if not name or not version:
        raise SnapshotError(
            f"broken distribution metadata at {meta_dir}: METADATA has no Name/Version; "
            "reinstall that package (pip install --force-reinstall) or delete the directory."
        )
    egg_link = raw.get("egg_link")
    location = str(raw["location"])
    files: list[RecordFile] = []
    if raw.get("files") is None:
        if not egg_link:
            raise SnapshotError(
                f"broken distribution metadata: {name} {version} at {meta_dir} has no RECORD, "
                f"so its files are unknown; reinstall it (pip install --force-reinstall {name})."
            )
    else:
        base = location + os.sep
        for rel, digest, _size in raw["files"]:
            if rel.startswith(("../", "./", "/")) or "/." in rel or os.sep != "/":
                path = os.path.normpath(os.path.join(location, rel))
            else:  # the common case, already normal: skip normpath's cost on big envs
                path = base + rel
            files.append(RecordFile(rel, path, digest))
    source = _source(raw.get("direct_url"), egg_link)
    eps = {g: dict(v) for g, v in sorted((raw.get("entry_points") or {}).items())}
    roots: tuple[SourceRoot, ...] = ()
    pointers: frozenset[str] = frozenset()
    if source == "editable":
        roots, pointers = editable_roots(str(name), meta_dir, files, egg_link)
        if not roots:
            log.warning("editable %s: could not find where its code lives; packing metadata only",
                        name)
    return DistInfo(
        name=canonical_name(str(name)),
        display_name=str(name),
        version=str(version),
        source=source,
        metadata_dir=str(meta_dir),
        location=location,
        files=tuple(files),
        entry_points=eps,
        roots=roots,
        pointer_files=pointers,
        egg_link=egg_link,
    )


def _stray(site_dirs: tuple[str, ...], dists: tuple[DistInfo, ...]) -> tuple[list[str], list[str]]:
    owned: set[str] = set()
    owned_tops: set[str] = set()
    for d in dists:
        owned.add(d.metadata_dir)
        if d.egg_link:
            owned.add(d.egg_link)
        if d.location in site_dirs:  # fast path: RECORD paths are relative to site-packages
            base = d.location + os.sep
            owned_tops.update(base + f.rel.partition("/")[0] for f in d.files
                              if not f.rel.startswith("."))
            owned.update(f.path for f in d.files if f.rel.startswith("."))
        else:
            owned.update(f.path for f in d.files)
    prefixes = [sp + os.sep for sp in site_dirs]
    for p in owned:
        for prefix in prefixes:
            if p.startswith(prefix):
                owned_tops.add(prefix + p[len(prefix):].split(os.sep, 1)[0])
                break
    stray: list[str] = []
    foreign_pth: list[str] = []
    for sp in site_dirs:
        for entry in sorted(os.listdir(sp)):
            full = os.path.join(sp, entry)
            if entry == "__pycache__" or entry.endswith((".pyc", ".egg-link")):
                continue
            if full in owned_tops:
                continue
            if entry == "easy-install.pth":  # legacy develop installs: handled via egg-links
                continue
            if entry == "README.txt":  # CPython's "this directory exists so that…" note
                continue
            stray.append(full)
            if entry.endswith(".pth"):
                foreign_pth.append(full)
    return stray, foreign_pth


def _warn_off_env_paths(pth: str, prefix: str) -> None:
    """A stray .pth adding directories outside the env will not resolve on a node: say so."""
    try:
        with open(pth, encoding="utf-8", errors="replace") as fh:
            lines = [ln.strip() for ln in fh]
    except OSError:
        return
    site = os.path.dirname(pth)
    for line in lines:
        if not line or line.startswith(("#", "import ", "import\t")):
            continue
        target = os.path.normpath(os.path.join(site, line))
        if os.path.isdir(target) and not target.startswith(prefix + os.sep):
            log.warning("%s adds %s, which is outside the environment and will not be shipped; "
                        "install that code as a package (pip install -e) instead", pth, target)


def snapshot_from_probe(data: Mapping[str, Any]) -> Snapshot:
    """Turn the probe's JSON answer into a Snapshot (editable roots resolved, strays found)."""
    by_name: dict[str, DistInfo] = {}
    for raw in data["distributions"]:
        dist = _dist(raw)
        if dist.name in by_name:
            log.warning("%s is installed twice (%s and %s); using the first",
                        dist.name, by_name[dist.name].metadata_dir, dist.metadata_dir)
            continue
        by_name[dist.name] = dist
    dists = tuple(by_name[k] for k in sorted(by_name))
    site_dirs = tuple(str(s) for s in data["site_packages"])
    stray, foreign_pth = _stray(site_dirs, dists)
    for path in stray:
        # virtualenv's own helper (_virtualenv.py/.pth) is expected in every venv it makes
        level = logging.INFO if os.path.basename(path).startswith("_virtualenv.") else (
            logging.WARNING)
        log.log(level, "%s belongs to no installed distribution; including it in the deps layer",
                path)
    for pth in foreign_pth:
        _warn_off_env_paths(pth, str(data["prefix"]))
    python = PythonInfo(
        implementation=str(data["implementation"]),
        version=str(data["version"]),
        abi=str(data["abi"]),
        platform=str(data["platform"]),
        cache_tag=str(data.get("cache_tag") or default_cache_tag(
            str(data["implementation"]), str(data["version"]))),
    )
    return Snapshot(
        python=python,
        executable=str(data["executable"]),
        prefix=str(data["prefix"]),
        base_prefix=str(data["base_prefix"]),
        site_packages=site_dirs,
        stdlib=str(data["stdlib"]),
        scripts=str(data["scripts"]),
        ldlibrary=str(data.get("ldlibrary") or ""),
        libdir=str(data.get("libdir") or ""),
        distributions=dists,
        stray=tuple(stray),
        foreign_pth=tuple(foreign_pth),
    )
