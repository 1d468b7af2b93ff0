"""Code drift: has the local code changed since the env was shipped? Every engine asks this
before it starts processes that would run the shipped code while the driver runs the edited."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EngineError, EnvshipError
from .node import formats

if TYPE_CHECKING:
    from .env import Env

__all__ = ["CodeDrift", "code_drift", "require_code_match"]

log = logging.getLogger(__name__)

_SITE = "site-packages/"
_SKIP_SUFFIXES = (".dist-info", ".egg-info", ".pth")


@dataclass(frozen=True)
class CodeDrift:
    """Local sources that differ from the env's code layer (paths relative to site-packages)."""

    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # in the layer, gone locally
    compared: int = 0  # files compared

    @property
    def ok(self) -> bool:
        return not self.changed and not self.missing


def code_drift(env: Env, search_path: Sequence[str] = ()) -> CodeDrift:
    """Compare the env's code layer with the code this process would import.

    Each top-level package or module in the code layer is located locally (first in
    *search_path*, e.g. the job script's directory, then through this interpreter's finders,
    which resolve editable installs to their checkout); files are compared by sha256.
    Names that cannot be found locally are skipped (the driver may run elsewhere).
    """
    # Schema 2 and 3: one code layer per project (the one naming no distribution holds stray
    # files, not code being worked on); schema 1: the one code layer.
    merged = formats.is_merged({"schema": env.manifest.schema_id})
    layers = [lay for lay in env.manifest.layers_of("code") if lay.dists or not merged]
    if not layers:
        return CodeDrift()
    changed: list[str] = []
    missing: list[str] = []
    compared = 0
    with tempfile.TemporaryDirectory(prefix="envship-check-") as tmp:
        for layer in layers:
            blob = Path(tmp) / f"{layer.hex}.tar.gz"
            try:
                env.store().fetch_blob(layer.digest, blob)
            except EnvshipError as exc:
                raise EngineError(
                    f"cannot read the code layer of env {env.env_id[:12]} to compare it with the "
                    f"local code: {exc}; pass check=False (--no-check) to skip the check"
                ) from exc
            for rel, digest in _layer_files(blob):
                local = _locate(rel, search_path)
                if local is None:
                    continue
                compared += 1
                if not local.is_file():
                    missing.append(rel)
                elif _sha256(local) != digest:
                    changed.append(rel)
    return CodeDrift(tuple(changed), tuple(missing), compared)


def require_code_match(env: Env, search_path: Sequence[str] = ()) -> CodeDrift:
    """:func:`code_drift`, raising :class:`EngineError` when the local code was edited."""
    drift = code_drift(env, search_path)
    if drift.ok:
        log.info("local code matches env %s (%d files)", env.env_id[:12], drift.compared)
        return drift
    shown = [f"{p} (changed)" for p in drift.changed] + [f"{p} (deleted)" for p in drift.missing]
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    raise EngineError(
        f"local code differs from env {env.env_id[:12]}: {', '.join(shown[:5])}{more}. "
        "Ship again (`envship ship` / envship.ship()) and use the new env, or pass "
        "check=False (--no-check) to run the shipped code anyway."
    )


def _layer_files(blob: Path) -> Iterator[tuple[str, str]]:
    """(path relative to site-packages, sha256) of the code layer's own source files."""
    with tarfile.open(blob, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith(_SITE):
                continue
            rel = member.name[len(_SITE) :]
            top = rel.split("/", 1)[0]
            if top.endswith(_SKIP_SUFFIXES) or top.startswith("__editable__"):
                continue
            if rel.endswith(".pyc") or "__pycache__/" in rel:
                continue  # schema 2 code layers carry bytecode; the local checkout's differs
            f = tar.extractfile(member)
            if f is None:
                continue
            yield rel, hashlib.sha256(f.read()).hexdigest()


def _locate(rel: str, search_path: Sequence[str]) -> Path | None:
    """The local file *rel* (``pkg/mod.py`` or ``mod.py``) would be imported from, if known."""
    top, _, rest = rel.partition("/")
    name = top[:-3] if not rest and top.endswith(".py") else top
    if not rest and not top.endswith(".py"):
        return None  # a stray data file at the top of site-packages
    spec = _find_spec(name, search_path)
    if spec is None:
        return None
    if rest:
        for base in spec.submodule_search_locations or ():
            candidate = Path(base) / rest
            if candidate.exists():
                return candidate
        locations = list(spec.submodule_search_locations or ())
        if not locations or _is_namespace(spec):
            return None  # a namespace portion is no evidence the file was deleted
        return Path(locations[0]) / rest
    return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None


def _is_namespace(spec: importlib.machinery.ModuleSpec) -> bool:
    return spec.origin in (None, "namespace")


def _find_spec(name: str, search_path: Sequence[str]) -> importlib.machinery.ModuleSpec | None:
    if search_path:
        # Like a script's own directory at the head of sys.path; a bare directory there (a
        # namespace portion, e.g. a project checkout named like its package) does not count.
        spec = importlib.machinery.PathFinder.find_spec(name, [os.fspath(p) for p in search_path])
        if spec is not None and not _is_namespace(spec):
            return spec
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
